// How the harness reaches the app: in process through its fetch handler (the default), or over real HTTP to a
// server process under Node or Deno (TEST_SERVER=node|deno) on the same fresh database, or in process with the
// app's queries going through the Neon driver and a WebSocket proxy (TEST_DRIVER=neon).
import type { createApp } from '../../lib/app.ts';
import type { Clock } from '../../lib/clock.ts';
import type { Database } from '../../lib/db.ts';
import { clockHeader } from './clocked-app.ts';
import type { TestDatabase } from './databases.ts';
import { neonThroughProxy } from './neon-local.ts';
import { serverRuntime, startServerProcess } from './server-process.ts';

export interface Transport {
  send(path: string, init: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

/** The database the app's queries go through: the test's own, or the same database reached by the Neon driver. */
export async function appDatabase(database: TestDatabase): Promise<{ db: Database; close(): Promise<void> }> {
  if (process.env.TEST_DRIVER !== 'neon') return { db: database.db, close: async () => {} };
  if (!database.url) throw new Error('TEST_DRIVER=neon needs the postgres backend');
  return neonThroughProxy(database.url);
}

export async function openTransport(
  app: ReturnType<typeof createApp>,
  database: TestDatabase,
  env: Record<string, string>,
  clock: Clock | undefined,
  pool: number | undefined,
): Promise<Transport> {
  const runtime = serverRuntime();
  if (!runtime) return { send: async (path, init) => app.request(path, init), close: async () => {} };
  if (!database.url) throw new Error('TEST_SERVER needs the postgres backend');
  const server = await startServerProcess(runtime, {
    ...env,
    DATABASE_URL: database.url,
    ...(pool ? { SPENDGATE_POOL_SIZE: String(pool) } : {}),
  });
  return {
    send: (path, init) => {
      const headers = new Headers(init.headers);
      const now = clock?.now();
      if (now) headers.set(clockHeader, now.toISOString());
      return fetch(server.base + path, { ...init, headers });
    },
    close: () => server.stop(),
  };
}
