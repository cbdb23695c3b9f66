import { mkdirSync } from 'node:fs';
import type { Database } from '../../lib/db.ts';
import { pgliteDatabase } from '../../lib/db/pglite.ts';
import { postgresDatabase } from '../../lib/db/postgres.ts';

/** DATABASE_URL when set (postgres.js); otherwise the embedded Postgres persisted under ./.spendgate/. */
export async function openDatabase(env: NodeJS.ProcessEnv): Promise<{ db: Database; description: string }> {
  if (env.DATABASE_URL) {
    const db = postgresDatabase(env.DATABASE_URL, {
      max: env.SPENDGATE_POOL_SIZE ? Number(env.SPENDGATE_POOL_SIZE) : undefined,
      prepare: env.SPENDGATE_PREPARE !== 'false',
      statementTimeoutMs: env.SPENDGATE_STATEMENT_TIMEOUT_MS ? Number(env.SPENDGATE_STATEMENT_TIMEOUT_MS) : undefined,
      connectTimeoutMs: env.SPENDGATE_CONNECT_TIMEOUT_MS ? Number(env.SPENDGATE_CONNECT_TIMEOUT_MS) : undefined,
    });
    return { db, description: `Postgres at ${new URL(env.DATABASE_URL).host}` };
  }
  const dataDir = env.SPENDGATE_DATA_DIR ?? '.spendgate/pgdata';
  mkdirSync(dataDir, { recursive: true });
  return { db: await pgliteDatabase(dataDir), description: `embedded Postgres (PGlite) in ${dataDir}` };
}
