// A PostgreSQL cluster of a test's own, made with initdb and started with pg_ctl on a free port with the settings
// the test asks for (such as shared_preload_libraries, which the shared server cannot change), then removed.
import { execFile } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.ts';

const run = promisify(execFile);

export interface Cluster {
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url(database: string): string;
  stop(): Promise<void>;
}

/** The newest PostgreSQL under /usr/lib/postgresql (Debian's layout) that has initdb and every library named, or
 * the reason there is none. */
export function findPostgres(libraries: string[]): { bin: string } | { missing: string } {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return { missing: `no PostgreSQL server under ${root}` };
  const versions = readdirSync(root).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = join(root, version, 'bin');
    if (!existsSync(join(bin, 'initdb'))) continue;
    const absent = libraries.filter((library) => !existsSync(join(root, version, 'lib', `${library}.so`)));
    if (absent.length === 0) return { bin };
    return { missing: `${absent.join(', ')} not installed for PostgreSQL ${version} (Debian: apt-get install postgresql-${version}-${absent[0]!.replace('pg_', '')})` };
  }
  return { missing: `no initdb under ${root}` };
}

/** initdb refuses to run as root: as root, the cluster belongs to (and runs as) the postgres user. */
async function asServerUser(command: string, args: string[]): Promise<void> {
  if (process.getuid?.() === 0) await run('runuser', ['-u', 'postgres', '--', command, ...args]);
  else await run(command, args);
}

export async function startCluster(bin: string, settings: Record<string, string>): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'spendgate-cluster-'));
  const data = join(dir, 'data');
  if (process.getuid?.() === 0) await run('chown', ['postgres:postgres', dir]);
  await asServerUser(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--no-locale']);
  const port = await freePort();
  const conf = { port: String(port), listen_addresses: "'127.0.0.1'", unix_socket_directories: `'${dir}'`, fsync: 'off', ...settings };
  appendFileSync(join(data, 'postgresql.conf'), Object.entries(conf).map(([name, value]) => `${name} = ${value}\n`).join(''));
  await asServerUser(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
  return {
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async stop() {
      await asServerUser(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
