import { mkdir } from 'node:fs/promises';
import type { Database } from '../../lib/db.ts';
import { openLocalDatabase } from '../local-database.ts';

/** DATABASE_URL when set (postgres.js); otherwise the embedded Postgres persisted under ./.spendgate/. */
export function openDatabase(env: NodeJS.ProcessEnv): Promise<{ db: Database; description: string }> {
  return openLocalDatabase(env, async (path) => {
    await mkdir(path, { recursive: true });
  });
}
