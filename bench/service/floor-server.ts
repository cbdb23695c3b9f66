// The bench's floor: functions/node-server.ts (the same start-up, app, HTTP listener, request log, pool and group
// commit) over a database whose ledger does the least a durable transaction can: each reserve, settle or batch of
// them is one INSERT of one row and its commit, and the answers are copies of a real reserve's and settle's.
// Its latency at a given rate is what the machine gives any ledger on this design, before the ledger's own SQL.
import { randomUUID } from 'node:crypto';
import { runLocalServer } from '../../functions/local-server.ts';
import { openDatabase } from '../../functions/node/database.ts';
import { readMigrations } from '../../functions/node/migrations.ts';
import { listen } from '../../functions/node/request-listener.ts';
import { stdoutLines } from '../../functions/node/stdout-lines.ts';
import { databaseClock } from '../../lib/clock.ts';
import { type Config, loadConfig } from '../../lib/config.ts';
import type { Database } from '../../lib/db.ts';
import { createLedger } from '../../lib/ledger.ts';
import { ReserveBody, reservePayload } from '../../lib/routes/reserve-request.ts';
import { floorTable } from './database.ts';

type Json = Record<string, unknown>;
type Call = { reserve: unknown } | { settle: unknown; id: string };

/** One real reserve and settle, whose answers every floor answer copies: the same fields, sizes and headers. */
async function realAnswers(db: Database, config: Config): Promise<{ reserved: Json; settled: Json }> {
  const ledger = createLedger(db, databaseClock);
  const body = ReserveBody.parse({ scopes: { key: 'bench-floor' }, estimate: { cost: '0.001' }, ttl_seconds: 600 });
  const reserved = await ledger.reserve(await reservePayload(body, undefined, config));
  const settled = await ledger.settle(String(reserved.id), { cost: '0.0005', settle_hash: 'bench-floor' });
  return { reserved, settled };
}

/** `db` with the ledger's reserve, settle and run_batch statements replaced by one INSERT each; every other
 * statement (migrations, the clock, the rest of the API) goes through. The answers: the real reserve's with a new
 * id per reserve, the real settle's with the settled id, made at the first such statement (after the migrations). */
function floorDatabase(db: Database, config: Config): Database {
  let answers: Promise<{ reserved: Json; settled: Json }> | undefined;
  return {
    ...db,
    async query<Row>(text: string, params: readonly unknown[] = []): Promise<Row[]> {
      const statement = /spendgate\.(reserve|settle|run_batch)\(/.exec(text)?.[1];
      if (statement === undefined) return db.query<Row>(text, params);
      const { reserved, settled } = await (answers ??= realAnswers(db, config));
      const calls: Call[] = statement === 'run_batch'
        ? (JSON.parse(String(params[0])) as Call[])
        : [statement === 'reserve' ? { reserve: null } : { settle: null, id: String(params[0]) }];
      await db.query(`insert into ${floorTable} (calls) values ($1)`, [calls.length]);
      return calls.map((call) =>
        ({ result: 'reserve' in call ? { ...reserved, id: randomUUID() } : { ...settled, id: call.id } }) as Row);
    },
  };
}

await runLocalServer({
  env: process.env,
  async openDatabase(env) {
    const opened = await openDatabase(env);
    // The server checks the configuration too, before this; here it only shapes the real reserve.
    const config = loadConfig(env, { allowGeneratedTokens: true });
    return { db: floorDatabase(opened.db, config), description: `${opened.description}, as the bench's floor` };
  },
  readMigrations,
  listen,
  onStopSignal: (stop) => {
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  },
  exit: (code) => process.exit(code),
  logRequest: stdoutLines(),
});
