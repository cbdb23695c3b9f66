import { PGlite } from '@electric-sql/pglite';
import type { Database, MigrationSession } from '../db.ts';

/** Embedded Postgres (PGlite): one connection in this process, persisted in `dataDir` (in memory when omitted).
 * Each state change is one statement, so its single connection serializes them without losing atomicity. */
export async function pgliteDatabase(dataDir?: string): Promise<Database> {
  const pg = await PGlite.create(dataDir);
  return {
    async query<Row>(text: string, params: readonly unknown[] = []) {
      return (await pg.query<Row>(text, [...params])).rows;
    },
    transaction(fn) {
      return pg.transaction((tx) => {
        const session: MigrationSession = {
          query: async <Row>(text: string, params: readonly unknown[] = []) =>
            (await tx.query<Row>(text, [...params])).rows,
          script: async (script) => {
            await tx.exec(script);
          },
        };
        return fn(session);
      });
    },
    close: () => pg.close(),
  };
}
