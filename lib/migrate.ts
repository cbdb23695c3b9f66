import type { DatabaseSettings } from './config.ts';
import type { Database } from './db.ts';

export interface Migration {
  /** File name, e.g. `0001_schema.sql`; applied in name order, each once. */
  name: string;
  sql: string;
}

/**
 * Applies the migrations not yet recorded, in one transaction under an advisory lock: two runners at once (two
 * deploys, two cold starts) apply each migration once, the second waiting and then finding nothing to do.
 * Then stores the settings every instance must agree on. Returns the names it applied.
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
      );`);
    const rows = await tx.query<{ name: string }>('select name from spendgate.schema_migrations');
    const applied = new Set(rows.map((row) => row.name));
    const pending = [...migrations].sort((a, b) => a.name.localeCompare(b.name)).filter((m) => !applied.has(m.name));
    for (const migration of pending) {
      await tx.script(migration.sql);
      await tx.query('insert into spendgate.schema_migrations (name) values ($1)', [migration.name]);
    }
    if (settings.rateWindowSeconds !== null) {
      await tx.query('select spendgate.configure($1::integer)', [settings.rateWindowSeconds]);
    }
    return pending.map((m) => m.name);
  });
}
