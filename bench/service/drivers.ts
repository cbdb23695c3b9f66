// The three ways a pair is driven: the minimal raw-SQL baseline over postgres.js, the app's fetch called in this
// process, and the server process over keep-alive HTTP. Amounts are decimal strings throughout.
import postgres from 'postgres';
import { createApp } from '../../lib/app.ts';
import { loadConfig } from '../../lib/config.ts';
import { postgresDatabase } from '../../lib/db/postgres.ts';
import { type Answer, httpClient } from './http-client.ts';
import type { Driver, Target } from './load.ts';

/** What every pair holds and then settles. */
export const holdCost = '0.001';
export const settleCost = '0.0005';

export interface Tokens {
  admin: string;
  service: string;
}

/** The group-commit settings the bench was run with: taken from its own environment and given to the in-process app
 * and the server alike, so that they can be compared at other values than the defaults. */
export const groupCommitEnv: Record<string, string> = Object.fromEntries(
  ['SPENDGATE_BATCH_MAX', 'SPENDGATE_BATCH_CONCURRENCY'].flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
);

/** The baseline's tables, in a schema of their own: `spread` budget rows 1..spread with `spreadBudget` each, and
 * row 0 (the hot one) with `hotBudget`. */
export async function createBaselineTables(sql: postgres.Sql, spread: number, spreadBudget: string, hotBudget: string): Promise<void> {
  await sql.unsafe(`
    create schema bench_baseline;
    create table bench_baseline.budgets (
      id         integer primary key,
      max_budget numeric not null,
      spent      numeric not null default 0,
      reserved   numeric not null default 0
    );
    create table bench_baseline.holds (
      id        uuid primary key default gen_random_uuid(),
      budget_id integer not null,
      amount    numeric not null,
      status    text not null
    );`);
  await sql`insert into bench_baseline.budgets (id, max_budget)
            select 0, ${hotBudget}::numeric
            union all select i, ${spreadBudget}::numeric from generate_series(1, ${spread}::integer) i`;
}

/** The least a budgeted reserve and settle can be in SQL: one transaction each, a checked UPDATE of the budget and
 * an INSERT of the hold; then an UPDATE of the hold and one of the budget. */
export function baselineDriver(url: string, pool: number): Driver {
  const sql = postgres(url, { max: pool, onnotice: () => {} });
  return {
    reserve: ({ budget }: Target) =>
      sql.begin(async (tx) => {
        const charged = await tx`
          update bench_baseline.budgets set reserved = reserved + ${holdCost}::numeric
           where id = ${budget} and spent + reserved + ${holdCost}::numeric <= max_budget
          returning id`;
        if (charged.length === 0) throw new Error(`baseline budget ${budget} exceeded`);
        const [hold] = await tx<{ id: string }[]>`
          insert into bench_baseline.holds (budget_id, amount, status) values (${budget}, ${holdCost}::numeric, 'held')
          returning id`;
        return hold!.id;
      }),
    settle: (id: string) =>
      sql.begin(async (tx) => {
        const [hold] = await tx<{ budget_id: number; amount: string }[]>`
          update bench_baseline.holds set status = 'settled' where id = ${id} and status = 'held'
          returning budget_id, amount`;
        if (!hold) throw new Error(`baseline hold ${id} is not held`);
        await tx`
          update bench_baseline.budgets
             set reserved = reserved - ${hold.amount}::numeric, spent = spent + ${settleCost}::numeric
           where id = ${hold.budget_id}`;
      }),
    close: () => sql.end({ timeout: 5 }),
  };
}


type Post = (path: string, body: string) => Promise<Answer>;

/** Reserve and settle as a gateway calls them: no model (the tokenizer stays out), a caller estimate instead. */
function serviceDriver(post: Post, close: () => Promise<void>): Driver {
  return {
    async reserve({ scopes }: Target) {
      const answer = await post('/v1/reservations', JSON.stringify({ scopes, estimate: { cost: holdCost }, ttl_seconds: 600 }));
      if (answer.status !== 201) throw new Error(`reserve answered ${answer.status}: ${answer.text.slice(0, 300)}`);
      return (JSON.parse(answer.text) as { id: string }).id;
    },
    async settle(id: string) {
      const answer = await post(`/v1/reservations/${id}/settle`, JSON.stringify({ cost: settleCost }));
      if (answer.status !== 200) throw new Error(`settle answered ${answer.status}: ${answer.text.slice(0, 300)}`);
    },
    close,
  };
}

/** The app's fetch called directly, on a postgres.js pool of `pool` in this process: the service without HTTP. */
export function inProcessDriver(url: string, pool: number, tokens: Tokens): Driver {
  const db = postgresDatabase(url, { max: pool });
  const config = loadConfig({ ...groupCommitEnv, SPENDGATE_ADMIN_TOKEN: tokens.admin, SPENDGATE_SERVICE_TOKEN: tokens.service },
                            { allowGeneratedTokens: false });
  // The request log line is still built; only its write is dropped (the server process writes it to a file).
  const app = createApp({ db, config, logRequest: () => {} });
  const headers = { authorization: `Bearer ${tokens.service}`, 'content-type': 'application/json' };
  const utf8 = new TextEncoder();
  // The body as bytes, as the Node server hands over the bodies it has read (functions/node/request-listener.ts).
  return serviceDriver(async (path, body) => {
    const response = await app.fetch(new Request(`http://in-process${path}`, { method: 'POST', headers }), { body: utf8.encode(body) });
    return { status: response.status, text: await response.text() };
  }, () => db.close());
}

/** The server process over keep-alive HTTP/1.1 (bench/service/http-client.ts), one connection per client at most. */
export function httpDriver(base: string, connections: number, token: string): Driver {
  const client = httpClient(base, connections);
  const authorization = `Bearer ${token}`;
  return serviceDriver((path, body) => client.post(path, body, authorization), async () => client.close());
}

/** GET with the admin token (the audit). */
export async function adminGet(base: string, path: string, token: string): Promise<Answer> {
  const response = await fetch(base + path, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, text: await response.text() };
}
