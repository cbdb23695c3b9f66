// The server under test, in a process of its own so that the load generator does not share its event loop.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { groupCommitEnv, type Tokens } from './drivers.ts';

export interface ServerProcess {
  base: string;
  pid: number;
  stop(): Promise<void>;
}

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `node --import tsx functions/node-server.ts` on a port the OS picks (PORT=0), with a pool of `pool` and the
 * bench's group-commit settings (no other SPENDGATE_ variable of the caller's); resolves
 * once it prints its listening line, fails with its output if it exits first or takes over 60 s. */
export async function startServer(url: string, pool: number, tokens: Tokens): Promise<ServerProcess> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(DATABASE_URL|PORT|HOST|CRON_SECRET|SPENDGATE_.*)$/.test(name)),
  );
  const env = {
    ...inherited,
    ...groupCommitEnv,
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: url,
    SPENDGATE_ADMIN_TOKEN: tokens.admin,
    SPENDGATE_SERVICE_TOKEN: tokens.service,
    SPENDGATE_POOL_SIZE: String(pool),
  };
  // node itself rather than the tsx command, so that the signal reaches the server and not a wrapper.
  const child = spawn(process.execPath, ['--import', 'tsx', 'functions/node-server.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let output = '';
  let listening = false;
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within 60 s:\n${output}`)), 60_000);
    const read = (chunk: Buffer) => {
      if (listening) return;
      output += chunk.toString();
      const line = /listening on (http:\/\/[\d.]+:\d+)/.exec(output);
      if (line) {
        listening = true;
        clearTimeout(timer);
        resolve(line[1]!);
      }
    };
    // Read for as long as it runs: it writes a log line per request, and a full pipe would block it.
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the server exited before it listened:\n${output}`));
    });
  });
  return {
    base,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000).unref());
      if ((await Promise.race([exited, timeout])) === 'timeout') child.kill('SIGKILL');
    },
  };
}
