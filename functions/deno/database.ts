import type { Database } from '../../lib/db.ts';
import { openLocalDatabase } from '../local-database.ts';

/** DATABASE_URL when set (postgres.js); otherwise the embedded Postgres persisted under ./.spendgate/. */
export function openDatabase(env: Record<string, string | undefined>): Promise<{ db: Database; description: string }> {
  return openLocalDatabase(env, (path) => Deno.mkdir(path, { recursive: true }));
}
