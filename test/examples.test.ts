// The ledger's SQL, run as a user of the functions would (pgledger-style): each test/examples/NAME.sql runs on a
// fresh embedded database and its output must equal NAME.expected. UPDATE_EXAMPLES=1 rewrites the expected files;
// read the diff before committing it.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../lib/db.ts';
import { freshDatabase, type TestDatabase } from './support/databases.ts';

const dir = new URL('./examples/', import.meta.url);
const examples = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();

/** Runs the statements of a script one by one (split after a `;` that ends a line) and prints every row. */
async function run(db: Database, script: string): Promise<string> {
  const out: string[] = [];
  for (const statement of script.split(/;\s*\n/).map((s) => s.trim()).filter((s) => s.replace(/--.*$/gm, '').trim())) {
    out.push(statement.split('\n').map((line) => `> ${line}`).join('\n'));
    for (const row of await db.query(statement)) out.push(JSON.stringify(row));
  }
  return out.join('\n') + '\n';
}

describe('SQL examples', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await freshDatabase('pglite');
  });
  afterAll(() => database.drop());

  it.each(examples)('%s', async (file) => {
    const output = await run(database.db, readFileSync(new URL(file, dir), 'utf8'));
    const expectedUrl = new URL(file.replace(/\.sql$/, '.expected'), dir);
    if (process.env.UPDATE_EXAMPLES) writeFileSync(expectedUrl, output);
    expect(output).toBe(readFileSync(expectedUrl, 'utf8'));
  });
});
