// No SQL is built from strings at run time. Every statement the code sends is a literal with $n parameters; values
// never become SQL text. Checked on the source of lib/ and functions/: the calls that send SQL, and any string
// that reads like SQL and is put together with ${...} or +.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

const files = ['lib', 'functions'].flatMap((dir) => sourceFiles(join(root, dir))).map((path) => ({ path: relative(root, path), text: readFileSync(path, 'utf8') }));

/** A call that sends SQL (the Queryable's query, a migration script, postgres.js's unsafe, PGlite's exec); in the
 * ledger also its own `call(sql, params)`. */
const sqlCall = /(?:\.(?:query|unsafe|script)|\b(?:tx|pg|sql)\.exec)\s*(?:<[^>()]*>)?\(\s*/g;
const ledgerCall = /(?:\.(?:query|unsafe|script)|\b(?:tx|pg|sql)\.exec|\bcall)\s*(?:<[^>()]*>)?\(\s*/g;

/** The first argument, up to its end: a whole literal, or an expression up to the first top-level comma or paren. */
function firstArgument(text: string, start: number): { literal: 'quote' | 'template' | null; source: string; after: string } {
  const quote = text[start];
  if (quote === "'" || quote === '"' || quote === '`') {
    let i = start + 1;
    while (i < text.length && text[i] !== quote) i += text[i] === '\\' ? 2 : 1;
    return { literal: quote === '`' ? 'template' : 'quote', source: text.slice(start, i + 1), after: text.slice(i + 1).trimStart()[0] ?? '' };
  }
  const end = text.slice(start).search(/[,)]/);
  return { literal: null, source: text.slice(start, start + end).trim(), after: text[start + end] ?? '' };
}

/** Where SQL arrives as a value on purpose: the drivers pass their caller's statement on, the ledger's `call`
 * passes its literal on, and the migration runner runs the migration files. */
const passThrough: Record<string, readonly string[]> = {
  'lib/ledger.ts': ['text'],
  'lib/migrate.ts': ['migration.sql'],
  // countDatabaseErrors wraps a Queryable to count its failures.
  'lib/metrics.ts': ['text'],
};
const isDriver = (path: string) => path.startsWith('lib/db/');

describe('SQL text', () => {
  it('every statement sent is a literal (no ${...}, no +), or a statement passed through unchanged where that is the job', () => {
    const problems: string[] = [];
    let statements = 0;
    for (const { path, text } of files) {
      for (const match of text.matchAll(path === 'lib/ledger.ts' ? ledgerCall : sqlCall)) {
        const start = match.index! + match[0].length;
        const arg = firstArgument(text, start);
        const line = text.slice(0, match.index).split('\n').length;
        const where = `${path}:${line}: ${match[0]}${arg.source.slice(0, 60)}`;
        if (arg.literal !== null) {
          statements += 1;
          if (arg.literal === 'template' && arg.source.includes('${')) problems.push(`${where} interpolates into SQL`);
          if (arg.after === '+') problems.push(`${where} concatenates SQL`);
          continue;
        }
        const allowed = isDriver(path) ? ['text', 'script'] : (passThrough[path] ?? []);
        if (!allowed.includes(arg.source)) problems.push(`${where} sends SQL that is not a literal`);
      }
    }
    expect(problems).toEqual([]);
    // The scan did find the statements (the ledger alone sends a couple of dozen).
    expect(statements).toBeGreaterThan(20);
  });

  it('no string that reads like SQL is put together from pieces anywhere in lib/ or functions/', () => {
    const sqlWords = /\b(select|insert\s+into|update\s+\w+\s+set|delete\s+from|drop\s+(table|database)|create\s+(table|database|function)|alter\s+table|truncate)\b/i;
    const problems: string[] = [];
    for (const { path, text } of files) {
      for (const match of text.matchAll(/`(?:[^`\\]|\\.)*`/g)) {
        if (match[0].includes('${') && sqlWords.test(match[0])) problems.push(`${path}: ${match[0].slice(0, 80)}`);
      }
      for (const match of text.matchAll(/(['"])(?:(?!\1)[^\\]|\\.)*\1\s*\+|\+\s*(['"])(?:(?!\2)[^\\]|\\.)*\2/g)) {
        if (sqlWords.test(match[0])) problems.push(`${path}: ${match[0].slice(0, 80)}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
