import type { Migration } from '../../lib/migrate.ts';

const migrationsDir = new URL('../../migrations/', import.meta.url);

/** The project's migrations/ folder, read from disk (Deno). */
export function readMigrations(): Migration[] {
  return [...Deno.readDirSync(migrationsDir)]
    .filter((entry) => entry.isFile && entry.name.endsWith('.sql'))
    .map((entry) => entry.name)
    .sort()
    .map((name) => ({ name, sql: Deno.readTextFileSync(new URL(name, migrationsDir)) }));
}
