import type { Database } from '../lib/db.ts';
import { pgliteDatabase } from '../lib/db/pglite.ts';
import { postgresDatabase } from '../lib/db/postgres.ts';
import { postgresSettings } from '../lib/db/postgres-settings.ts';

type Env = Record<string, string | undefined>;

/** The database of a long-running process (`npm start`, `npm run start:deno`, `npm run migrate`, `npm run sweep`):
 * DATABASE_URL when set (postgres.js), otherwise the embedded Postgres persisted under ./.spendgate/.
 * `makeDirectory` is the runtime's own (Node's fs or Deno's). Throws ConfigError on a malformed setting. */
export async function openLocalDatabase(
  env: Env,
  makeDirectory: (path: string) => Promise<void>,
): Promise<{ db: Database; description: string }> {
  if (env.DATABASE_URL) {
    const db = postgresDatabase(env.DATABASE_URL, postgresSettings(env, { max: 10, prepare: true, idleTimeout: 20 }));
    return { db, description: `Postgres at ${new URL(env.DATABASE_URL).host}` };
  }
  const dataDir = env.SPENDGATE_DATA_DIR ?? '.spendgate/pgdata';
  await makeDirectory(dataDir);
  return { db: await pgliteDatabase(dataDir), description: `embedded Postgres (PGlite) in ${dataDir}` };
}
