import type { DatabaseSettings } from './config.ts';
import type { Database } from './db.ts';
import { sha256Hex } from './hash.ts';

export interface Migration {
  /** File name, e.g. `0001_schema.sql`; applied in name order, each once. */
  name: string;
  sql: string;
}

/** A migration recorded as applied whose text is not the text this build ships: its schema is not the one the code
 * expects, and applying the rest on top would leave a database that only looks migrated. */
export class MigrationMismatch extends Error {
  override readonly name = 'MigrationMismatch';
}

/**
 * Applies the migrations not yet recorded, in one transaction under an advisory lock: two runners at once (two
 * deploys, two cold starts) apply each migration once, the second waiting and then finding nothing to do.
 * Each is recorded with the SHA-256 of its text; a recorded one whose text has changed since (or that was recorded
 * before checksums were, by a pre-release build) stops the run with MigrationMismatch. Then stores the settings
 * every instance must agree on. Returns the names it applied.
 */
export async function migrate(db: Database, migrations: readonly Migration[],
                              settings: DatabaseSettings = { rateWindowSeconds: null }): Promise<string[]> {
  return db.transaction(async (tx) => {
    // A migration (or the wait for another runner's) may take longer than a request's statement timeout.
    await tx.query('set local statement_timeout = 0');
    await tx.query(`select pg_advisory_xact_lock(hashtextextended('spendgate.migrate', 0))`);
    await tx.script(`
      create schema if not exists spendgate;
      create table if not exists spendgate.schema_migrations (
        name text primary key,
        applied_at timestamptz not null default now()
      );
      alter table spendgate.schema_migrations add column if not exists checksum text;`);
    const rows = await tx.query<{ name: string; checksum: string | null }>('select name, checksum from spendgate.schema_migrations');
    const applied = new Map(rows.map((row) => [row.name, row.checksum]));
    const checksums = new Map(await Promise.all(migrations.map(async (m) => [m.name, await sha256Hex(m.sql)] as const)));
    const changed = migrations.filter((m) => applied.has(m.name) && applied.get(m.name) !== checksums.get(m.name));
    if (changed.length > 0) {
      throw new MigrationMismatch(
        `migrations ${changed.map((m) => m.name).join(', ')} were applied from a different text than this build ships ` +
          '(a database made by an unreleased earlier build); recreate the database, or restore the migrations it was made with.');
    }
    const pending = [...migrations].sort((a, b) => a.name.localeCompare(b.name)).filter((m) => !applied.has(m.name));
    for (const migration of pending) {
      await tx.script(migration.sql);
      await tx.query('insert into spendgate.schema_migrations (name, checksum) values ($1, $2)',
                     [migration.name, checksums.get(migration.name)]);
    }
    if (settings.rateWindowSeconds !== null) {
      await tx.query('select spendgate.configure($1::integer)', [settings.rateWindowSeconds]);
    }
    return pending.map((m) => m.name);
  });
}
