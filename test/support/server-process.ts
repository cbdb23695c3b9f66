// A server process for the HTTP suites to talk to over real HTTP: the clocked test app under Node (with tsx's
// loader) or Deno (the npm package's binary, resolving packages from node_modules as `npm run start:deno` does).
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { denoBinary } from './deno-binary.ts';

export type ServerRuntime = 'node' | 'deno';

export interface ServerProcess {
  base: string;
  stop(): Promise<void>;
}

const root = fileURLToPath(new URL('../..', import.meta.url));
const commands: Record<ServerRuntime, () => [string, string[]]> = {
  // One process that gets signals itself (the tsx command would stand between, relaying them).
  node: () => [process.execPath, ['--import', 'tsx', 'test/support/clocked-server.ts']],
  deno: () => [denoBinary(), ['run', '--allow-net', '--allow-env', '--allow-read', 'test/support/deno/clocked-server.ts']],
};

/** The runtime TEST_SERVER names, or null to drive the app in process. */
export function serverRuntime(): ServerRuntime | null {
  const value = process.env.TEST_SERVER;
  if (!value) return null;
  if (value !== 'node' && value !== 'deno') throw new Error(`TEST_SERVER must be node or deno, not ${value}`);
  return value;
}

/** Starts the process with `env` over this one's (less its database and spendgate settings), and waits until it
 * listens; fails with its output if it exits first or is not up within 60 s. */
export async function startServerProcess(runtime: ServerRuntime, env: Record<string, string>): Promise<ServerProcess> {
  const inherited: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || /^(DATABASE_URL|TEST_DATABASE_URL|PORT|CRON_SECRET|SPENDGATE_.*)$/.test(name)) continue;
    inherited[name] = value;
  }
  const [command, args] = commands[runtime]();
  // Its own process group, so that a stuck server (tsx and the node it runs) can be killed as a whole.
  const child = spawn(command, args, { cwd: root, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the ${runtime} server did not start within 60 s:\n${output}`)), 60_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the ${runtime} server exited before it listened:\n${output}`));
    });
  });
  return {
    base: `http://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000).unref());
      await Promise.race([exited, timeout]);
      // Whatever it started goes too (tsx runs node as a child).
      killGroup(child);
    },
  };
}

function killGroup(child: ChildProcess) {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}
