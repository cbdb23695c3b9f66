import postgres from 'postgres';
import { readMigrations } from '../../functions/node/migrations.ts';
import type { Database } from '../../lib/db.ts';
import { pgliteDatabase } from '../../lib/db/pglite.ts';
import { postgresDatabase } from '../../lib/db/postgres.ts';
import { migrate } from '../../lib/migrate.ts';

/** The real server the suite also runs against, when one is configured. */
export const postgresUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;

export type Backend = 'pglite' | 'postgres';

/** Every backend this run tests: always the embedded one, and the real server when configured; only the real
 * server when the app runs in a server process or on the Neon driver (TEST_SERVER, TEST_DRIVER), which reach it
 * by URL. */
export const backends: Backend[] =
  process.env.TEST_SERVER || process.env.TEST_DRIVER ? ['postgres'] : postgresUrl ? ['pglite', 'postgres'] : ['pglite'];

export interface TestDatabase {
  db: Database;
  /** Connection string of the fresh database (postgres only). */
  url: string | null;
  drop(): Promise<void>;
}

/** A new, migrated database of its own: in memory for PGlite, a fresh database on the server for Postgres. */
export async function freshDatabase(backend: Backend, options: { pool?: number } = {}): Promise<TestDatabase> {
  if (backend === 'pglite') {
    const db = await pgliteDatabase();
    await migrate(db, readMigrations());
    return { db, url: null, drop: () => db.close() };
  }
  if (!postgresUrl) throw new Error('no TEST_DATABASE_URL or DATABASE_URL');
  const name = `spendgate_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const server = postgres(postgresUrl, { max: 1, onnotice: () => {} });
  await server.unsafe(`create database ${name}`);
  await server.end();
  const url = new URL(postgresUrl);
  url.pathname = `/${name}`;
  const db = postgresDatabase(url.toString(), { max: options.pool ?? 10 });
  await migrate(db, readMigrations());
  return {
    db,
    url: url.toString(),
    async drop() {
      await db.close();
      const admin = postgres(postgresUrl, { max: 1, onnotice: () => {} });
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}
