/**
 * What the machine charges for a round trip between two processes, at several rates: a one-byte echo over loopback
 * TCP between this process and a child, paced by a timer as the service bench's open loop paces its pairs. Prints
 * the CPU each side and the whole machine (Linux /proc) spent per round trip. On a machine where waking a sleeping
 * process is cheap, the figures hardly change with the rate; where it is dear (a virtual machine whose idle cores
 * must be woken by the hypervisor), a round trip at a low rate costs several times one at a high rate, and so does
 * every request of the service, which is why its CPU per pair rises as the load falls (README, Performance).
 *
 * Run: npm run bench:round-trip [-- --seconds 3]
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

// The last is more than one connection's round trips can do here: one after the other, as fast as they go.
const rates = [100, 300, 1000, 100_000];

if (process.argv[2] === 'echo') {
  const server = createServer((socket) => socket.on('data', (data) => socket.write(data)));
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.send!(typeof address === 'object' && address ? address.port : 0);
  });
} else {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' } } });
  const seconds = Number(values.seconds);
  if (!(seconds > 0)) {
    console.error('usage: npm run bench:round-trip -- [--seconds N]');
    process.exit(64);
  }
  const child = fork(process.argv[1]!, ['echo'], { execArgv: process.execArgv });
  try {
    const port = await new Promise<number>((resolve) => child.once('message', (message) => resolve(Number(message))));
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    await new Promise((resolve) => socket.once('connect', resolve));
    console.log('| round trips / s asked | done | this process µs | echo process µs | whole machine µs |');
    console.log('|---:|---:|---:|---:|---:|');
    for (const rate of rates) {
      const before = { self: processCpuMs(process.pid), echo: processCpuMs(child.pid!), machine: machineBusyMs() };
      const done = await echoAt(socket, rate, seconds);
      const per = (after: number, start: number) => ((after - start) * 1000 / done).toFixed(0);
      console.log(`| ${rate} | ${Math.round(done / seconds)} | ${per(processCpuMs(process.pid), before.self)} | ` +
        `${per(processCpuMs(child.pid!), before.echo)} | ${per(machineBusyMs(), before.machine)} |`);
    }
    socket.destroy();
  } finally {
    child.kill();
  }
}

/** Round trips started at `rate` per second for `seconds`, each when the last has come back and it is due (at once
 * when it is overdue). */
function echoAt(socket: Socket, rate: number, seconds: number): Promise<number> {
  return new Promise((resolve) => {
    const started = performance.now();
    let done = 0;
    const next = () => {
      const now = performance.now();
      if (now - started >= seconds * 1000) return resolve(done);
      socket.once('data', () => {
        done += 1;
        const wait = started + (done * 1000) / rate - performance.now();
        if (wait > 0) setTimeout(next, wait);
        else next();
      });
      socket.write('x');
    };
    next();
  });
}

/** CPU ms of a process (user + system), from /proc/<pid>/stat in ticks of 10 ms. */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** CPU ms all cores spent on anything but idling, waiting for I/O and the hypervisor's other guests (steal), from
 * /proc/stat. */
function machineBusyMs(): number {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq] = ticks.map(Number);
  return (user! + nice! + system! + irq! + softirq!) * 10;
}
