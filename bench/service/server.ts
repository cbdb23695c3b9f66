// The server under test, in a process of its own so that the load generator does not share its event loop.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { groupCommitEnv, type Tokens } from './drivers.ts';

export interface ServerProcess {
  base: string;
  pid: number;
  stop(): Promise<void>;
}

const root = fileURLToPath(new URL('../..', import.meta.url));
/** Where the servers' stdout (the request log, a line per request) goes, appended run after run. */
export const serverLog = fileURLToPath(new URL('../../bench-results/server.log', import.meta.url));

/** Where serverLog ends now: what a server writes after this goes past it. */
export function serverLogEnd(): number {
  return statSync(serverLog).size;
}

/** Up to `length` bytes of serverLog from byte `start`. */
function readServerLog(start: number, length: number): string {
  const text = Buffer.alloc(length);
  const file = openSync(serverLog, 'r');
  try {
    return text.subarray(0, readSync(file, text, 0, length, start)).toString();
  } finally {
    closeSync(file);
  }
}

/** The durations (ms) the server logged for its reserves (POST /v1/reservations) that started from `from` for
 * `seconds` (the line's time, when it ended, less its duration: the requests the load generator times), among the lines
 * it wrote past byte `start` of serverLog: the app's own time, without HTTP or the load generator. */
export function loggedReserveDurations(start: number, from: number, seconds: number): number[] {
  const durations: number[] = [];
  // The last piece is empty, or a line still being written.
  for (const line of readServerLog(start, serverLogEnd() - start).split('\n').slice(0, -1)) {
    if (!line.includes('"route":"/v1/reservations"')) continue;
    const entry = JSON.parse(line) as { time: string; method: string; duration_ms: number };
    const startedAt = Date.parse(entry.time) - entry.duration_ms;
    if (entry.method === 'POST' && startedAt >= from && startedAt < from + seconds * 1000) durations.push(entry.duration_ms);
  }
  return durations;
}

/** The servers the bench starts: spendgate's own, and the floor (bench/service/floor-server.ts). */
const serverEntries = { spendgate: 'functions/node-server.ts', floor: 'bench/service/floor-server.ts' } as const;
export type ServerKind = keyof typeof serverEntries;

/** `node --import tsx <entry of kind>` on a port the OS picks (PORT=0), with a pool of `pool` and the
 * bench's group-commit settings (no other SPENDGATE_ variable of the caller's); resolves once it has logged its
 * listening line, fails with its output if it exits first or takes over 60 s.
 *
 * Its stdout goes to a file (serverLog), as a deployed server's goes to a log collector: piped into this process,
 * the log (a write per event-loop turn) woke the load generator up to a thousand times a second, and the latencies
 * it measured included those wake-ups (p99 at 650 pairs/s: 20 ms piped, 11 ms with the log in a file). */
export async function startServer(url: string, pool: number, tokens: Tokens, kind: ServerKind = 'spendgate'): Promise<ServerProcess> {
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
  mkdirSync(dirname(serverLog), { recursive: true });
  const log = openSync(serverLog, 'a');
  const logStart = serverLogEnd();
  // node itself rather than the tsx command, so that the signal reaches the server and not a wrapper.
  const child = spawn(process.execPath, ['--import', 'tsx', serverEntries[kind]], { cwd: root, env, stdio: ['ignore', log, 'pipe'] });
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let errors = '';
  // Its stderr is read for as long as it runs: a full pipe would block it.
  child.stderr?.on('data', (chunk: Buffer) => {
    if (errors.length < 64 * 1024) errors += chunk.toString();
  });
  // What this server has written so far (its first 64 KiB, from where the file ended when it started), then its stderr.
  const output = () => `${readServerLog(logStart, 64 * 1024)}${errors}`;
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const base = await (async () => {
    for (const started = performance.now(); performance.now() - started < 60_000;) {
      const line = /listening on (http:\/\/[\d.]+:\d+)/.exec(output());
      if (line) return line[1]!;
      if (gone) throw new Error(`the server exited before it listened:\n${output()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child.kill('SIGKILL');
    throw new Error(`the server did not start within 60 s:\n${output()}`);
  })();
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
