// `npm run migrate`: applies pending migrations to DATABASE_URL (or the embedded database) and exits.
import { databaseSettings } from '../lib/config.ts';
import { migrate } from '../lib/migrate.ts';
import { openDatabase } from './node/database.ts';
import { readMigrations } from './node/migrations.ts';

const settings = databaseSettings(process.env);
const { db, description } = await openDatabase(process.env);
try {
  const applied = await migrate(db, readMigrations(), settings);
  console.log(applied.length > 0 ? `applied ${applied.join(', ')} to ${description}` : `${description} is up to date`);
} finally {
  await db.close();
}
