// The migration runner: several at once on one empty database apply each migration exactly once (advisory lock),
// and a later run finds nothing to do. On the real server and on PGlite.
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { readMigrations } from '../functions/node/migrations.ts';
import type { Database } from '../lib/db.ts';
import { pgliteDatabase } from '../lib/db/pglite.ts';
import { postgresDatabase } from '../lib/db/postgres.ts';
import { migrate, MigrationMismatch } from '../lib/migrate.ts';
import { postgresUrl } from './support/databases.ts';

const migrations = readMigrations();
const names = migrations.map((m) => m.name);

async function appliedRows(db: Database): Promise<string[]> {
  const rows = await db.query<{ name: string }>('select name from spendgate.schema_migrations order by name');
  return rows.map((row) => row.name);
}

describe('the migrations folder', () => {
  it('holds numbered .sql files, read in name order', () => {
    expect(names.length).toBeGreaterThanOrEqual(5);
    expect(names).toEqual([...names].sort());
    for (const name of names) expect(name).toMatch(/^\d{4}_[a-z0-9_]+\.sql$/);
    expect(new Set(names.map((n) => n.slice(0, 4))).size).toBe(names.length);
  });
});

describe.skipIf(!postgresUrl)('migrations on real Postgres', () => {
  const server = postgresUrl ? postgres(postgresUrl, { max: 1, onnotice: () => {} }) : null;
  const created: string[] = [];
  const open: Database[] = [];

  /** A new, empty database on the test server; dropped in afterAll. */
  async function emptyDatabase(): Promise<string> {
    const name = `spendgate_migrate_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
    await server!.unsafe(`create database ${name}`);
    created.push(name);
    const url = new URL(postgresUrl!);
    url.pathname = `/${name}`;
    return url.toString();
  }

  function connect(url: string): Database {
    const db = postgresDatabase(url, { max: 1 });
    open.push(db);
    return db;
  }

  afterAll(async () => {
    await Promise.all(open.map((db) => db.close()));
    for (const name of created) await server!.unsafe(`drop database if exists ${name} with (force)`);
    await server?.end();
  });

  it.each([2, 5])('%i runners at once on an empty database apply each migration exactly once', async (runners) => {
    const url = await emptyDatabase();
    const dbs = Array.from({ length: runners }, () => connect(url));
    const results = await Promise.all(dbs.map((db) => migrate(db, migrations)));

    // One runner applied everything, in order; every other one waited for it and found nothing to do.
    const appliers = results.filter((applied) => applied.length > 0);
    expect(appliers).toEqual([names]);
    expect(results.filter((applied) => applied.length === 0)).toHaveLength(runners - 1);

    const check = dbs[0]!;
    expect(await appliedRows(check)).toEqual(names);
    const [dupes] = await check.query<{ n: string }>(
      'select count(*) - count(distinct name) as n from spendgate.schema_migrations',
    );
    expect(Number(dupes!.n)).toBe(0);
    // The schema the migrations build is really there.
    const [found] = await check.query<{ ledger: string | null; audit: string | null }>(
      "select to_regclass('spendgate.reservations')::text as ledger, to_regprocedure('spendgate.audit()')::text as audit",
    );
    expect(found).toEqual({ ledger: 'spendgate.reservations', audit: 'spendgate.audit()' });

    // A second run, and a second round of concurrent runs, apply nothing.
    expect(await migrate(check, migrations)).toEqual([]);
    expect(await Promise.all(dbs.map((db) => migrate(db, migrations)))).toEqual(dbs.map(() => []));
    expect(await appliedRows(check)).toEqual(names);
  });

  it('applies only the migrations not yet recorded', async () => {
    const url = await emptyDatabase();
    const db = connect(url);
    const [first, ...rest] = migrations;
    expect(await migrate(db, [first!])).toEqual([first!.name]);
    const results = await Promise.all([migrate(db, migrations), migrate(connect(url), migrations), migrate(connect(url), migrations)]);
    expect(results.filter((r) => r.length > 0)).toEqual([rest.map((m) => m.name)]);
    expect(await appliedRows(db)).toEqual(names);
  });
});

describe('migrations on PGlite', () => {
  it('refuses a database whose applied migrations differ from the ones shipped, naming them, and changes nothing', async () => {
    const db = await pgliteDatabase();
    try {
      await migrate(db, migrations);
      // As a pre-release build left it: an applied migration with another text (no checksum recorded).
      await db.query(`update spendgate.schema_migrations set checksum = null where name = $1`, [names[1]]);
      const edited = migrations.map((m, i) => (i === 2 ? { ...m, sql: m.sql + '\n-- edited after it was applied\n' } : m));
      const error = await migrate(db, edited).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationMismatch);
      expect((error as Error).message).toContain(`${names[1]}, ${names[2]}`);
      expect(await appliedRows(db)).toEqual(names);
      // A recorded checksum that matches no shipped text is refused too.
      await db.query(`update spendgate.schema_migrations set checksum = 'x' where name = $1`, [names[1]]);
      await expect(migrate(db, migrations)).rejects.toThrow(names[1]!);
    } finally {
      await db.close();
    }
  });

  it('a second run applies nothing', async () => {
    const db = await pgliteDatabase();
    try {
      expect(await migrate(db, migrations)).toEqual(names);
      expect(await appliedRows(db)).toEqual(names);
      expect(await migrate(db, migrations)).toEqual([]);
      expect(await appliedRows(db)).toEqual(names);
    } finally {
      await db.close();
    }
  });
});
