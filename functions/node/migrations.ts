import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Migration } from '../../lib/migrate.ts';

const migrationsDir = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** The project's migrations/ folder, read from disk (Node). */
export function readMigrations(): Migration[] {
  return readdirSync(migrationsDir)
    .filter((name) => name.endsWith('.sql'))
    .sort()
    .map((name) => ({ name, sql: readFileSync(migrationsDir + name, 'utf8') }));
}
