// The bench's floor: the server of functions/node-server.ts (the same app, HTTP listener, request log, pool and
// group commit) over a database whose ledger does the least a durable transaction can: each reserve, settle or
// batch of them is one INSERT of one row and its commit, and the answers are copies of a real reserve's and settle's.
// Its latency at a given rate is what the machine gives any ledger on this design, before the ledger's own SQL.
import { randomUUID } from 'node:crypto';
import { openDatabase } from '../../functions/node/database.ts';
import { listen } from '../../functions/node/request-listener.ts';
import { stdoutLines } from '../../functions/node/stdout-lines.ts';
import { createApp } from '../../lib/app.ts';
import { databaseClock } from '../../lib/clock.ts';
import { loadConfig } from '../../lib/config.ts';
import type { Database } from '../../lib/db.ts';
import { createLedger } from '../../lib/ledger.ts';
import { ReserveBody, reservePayload } from '../../lib/routes/reserve-request.ts';
import { floorTable } from './database.ts';

type Json = Record<string, unknown>;
type Call = { reserve: unknown } | { settle: unknown; id: string };

/** `db` with the ledger's reserve, settle and run_batch statements replaced by one INSERT each; every other
 * statement (the clock, the rest of the API) goes through. The answers: `reserved` with a new id per reserve,
 * `settled` with the settled id. */
function floorDatabase(db: Database, reserved: Json, settled: Json): Database {
  const answer = (call: Call): Json => ('reserve' in call ? { ...reserved, id: randomUUID() } : { ...settled, id: call.id });
  const commit = (calls: number) => db.query(`insert into ${floorTable} (calls) values ($1)`, [calls]);
  return {
    ...db,
    async query<Row>(text: string, params: readonly unknown[] = []): Promise<Row[]> {
      const statement = /spendgate\.(reserve|settle|run_batch)\(/.exec(text)?.[1];
      if (statement === undefined) return db.query<Row>(text, params);
      const calls: Call[] = statement === 'run_batch'
        ? (JSON.parse(String(params[0])) as Call[])
        : [statement === 'reserve' ? { reserve: null } : { settle: null, id: String(params[0]) }];
      await commit(calls.length);
      return calls.map((call) => ({ result: answer(call) }) as Row);
    },
  };
}

const config = loadConfig(process.env, { allowGeneratedTokens: false });
const { db } = await openDatabase(process.env);
// One real reserve and settle, whose answers every floor answer copies: the same fields, sizes and headers.
const ledger = createLedger(db, databaseClock);
const body = ReserveBody.parse({ scopes: { key: 'bench-floor' }, estimate: { cost: '0.001' }, ttl_seconds: 600 });
const reserved = await ledger.reserve(await reservePayload(body, undefined, config));
const settled = await ledger.settle(String(reserved.id), { cost: '0.0005', settle_hash: 'bench-floor' });

const app = createApp({ db: floorDatabase(db, reserved, settled), config, logRequest: stdoutLines() });
const host = process.env.HOST ?? '127.0.0.1';
const listener = await listen(app.fetch, host, Number(process.env.PORT ?? 0));
console.log(`bench floor: listening on http://${host}:${listener.port}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void listener.close().then(() => db.close()).finally(() => process.exit(0)));
}
