// A PostgreSQL cluster of the test's own (initdb and pg_ctl from the machine's PostgreSQL), on a free port in a
// temporary directory, so that a test can stop and restart the database under a running server without touching
// the shared one. As root, the cluster runs as the `postgres` OS user (PostgreSQL refuses to run as root).
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.ts';

const run = promisify(execFile);

/** The newest PostgreSQL server binaries installed, or null when there are none. */
export const postgresBin: string | null = (() => {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = join(base, version, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return bin;
  }
  return null;
})();

const asRoot = process.getuid?.() === 0;

export interface ThrowawayPostgres {
  url: string;
  port: number;
  /** `pg_ctl stop -m immediate`: the server processes end at once, like a crash; restart replays the WAL. */
  stopImmediately(): Promise<void>;
  start(): Promise<void>;
  /** Stops the cluster and deletes its directory. */
  destroy(): Promise<void>;
  log(): string;
}

async function asOwner(command: string, args: string[]): Promise<void> {
  const [file, fileArgs] = asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  await run(file, fileArgs, { timeout: 60_000 });
}

export async function createThrowawayPostgres(): Promise<ThrowawayPostgres> {
  if (!postgresBin) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  const dir = mkdtempSync(join(tmpdir(), 'spendgate-pg-'));
  if (asRoot) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const port = await freePort();
  const pgCtl = join(postgresBin, 'pg_ctl');
  await asOwner(join(postgresBin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  // Loopback TCP only, its socket in its own directory, and few connections: it is a test's database.
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=60`;
  const start = () => asOwner(pgCtl, ['-D', data, '-l', logFile, '-w', '-t', '60', '-o', serverOptions, 'start']);
  const stop = (mode: 'immediate' | 'fast') => asOwner(pgCtl, ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
  await start();
  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async stopImmediately() {
      await stop('immediate');
      stopped = true;
    },
    async start() {
      await start();
      stopped = false;
    },
    async destroy() {
      if (!stopped) await stop('fast').catch(() => stop('immediate')).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
  };
}
