// Lines for stdout (the request log), written once per event-loop turn: one write per request was about a twentieth
// of the server's CPU under load, as each is a system call of its own on a pipe or file.
export function stdoutLines(): (line: string) => void {
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = `${pending.join('\n')}\n`;
    pending = [];
    process.stdout.write(text);
  };
  // process.exit() runs no timer: the lines of the last turn are written on the way out (synchronously, as Node
  // writes to pipes and files).
  process.on('exit', flush);
  return (line) => {
    if (pending.push(line) === 1) setImmediate(flush);
  };
}
