// The bench's own database: made fresh on the server DATABASE_URL names (or the local one), migrated as `npm run
// migrate` does, seeded in bulk SQL, and dropped at the end. Nothing outside it is touched.
import postgres from 'postgres';
import { readMigrations } from '../../functions/node/migrations.ts';
import { databaseSettings } from '../../lib/config.ts';
import { postgresDatabase } from '../../lib/db/postgres.ts';
import { migrate } from '../../lib/migrate.ts';

export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

const localServer = 'postgres://postgres@127.0.0.1:5432/postgres';

/** Creates `spendgate_bench_<pid>` on the server of DATABASE_URL, or on the local server when it is unset. */
export async function createBenchDatabase(): Promise<BenchDatabase> {
  const serverUrl = process.env.DATABASE_URL || localServer;
  const name = `spendgate_bench_${process.pid}`;
  const server = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await server.unsafe(`create database ${name}`);
  } finally {
    await server.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** What `npm run migrate` does, on the bench's database. */
export async function migrateBenchDatabase(url: string): Promise<void> {
  const db = postgresDatabase(url, { max: 1 });
  try {
    await migrate(db, readMigrations(), databaseSettings(process.env));
  } finally {
    await db.close();
  }
}

/** `count` keys `<prefix>-<n>` (n from 1) with a max_budget of `budget` each, inserted in one statement: what
 * PUT /v1/limits writes for a budget without a period, without its per-call cost (10 000 PUTs take seconds). */
export async function insertKeyBudgets(sql: postgres.Sql, prefix: string, count: number, budget: string): Promise<void> {
  await sql`insert into spendgate.limits (kind, id, model, max_budget, created_at, updated_at)
            select 'key', ${prefix} || '-' || i, '', ${budget}::numeric, now(), now()
              from generate_series(1, ${count}::integer) i`;
}

/** The zero counter rows of keys `<prefix>-1..count`, as the first reserve on each would create them. So that no
 * phase is timed while the counters table grows under it: the reserve's plans, made for the table as last
 * analyzed, then scan every counter row per reserve, and each phase would be slower than the one before. */
export async function insertKeyCounters(sql: postgres.Sql, prefix: string, count: number): Promise<void> {
  await sql`insert into spendgate.counters (kind, id, model, first_seen)
            select 'key', ${prefix} || '-' || i, '', now() from generate_series(1, ${count}::integer) i`;
}

export async function putTeamBudget(sql: postgres.Sql, team: string, budget: string): Promise<void> {
  await sql`select spendgate.put_limit('team', ${team}, jsonb_build_object('max_budget', ${budget}::text))`;
}

/** The table the floor's server (floor-server.ts) writes one row to per transaction. */
export const floorTable = 'bench_floor.transactions';

export async function createFloorTable(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(`create schema bench_floor; create table ${floorTable} (calls integer not null)`);
}

/** `count` holds of `cost` on keys `<prefix>-1..keys` (whose counters exist), reserved an hour ago with a 60 s
 * TTL, so that all are due for the sweeper; returns how many were held. Made `keys` at a time (one hold per key),
 * each round in statements of 500 on two connections, then vacuumed and analyzed as the tables grow (see
 * vacuumAnalyze). The two connections charge different stretches of keys, so neither waits for the other's locks. */
export async function seedExpiredHolds(sql: postgres.Sql, prefix: string, keys: number, count: number, cost: string): Promise<number> {
  const statement = 500;
  let held = 0;
  for (let round = 0; round < count; round += keys) {
    const last = Math.min(round + keys, count);
    const starts = Array.from({ length: Math.ceil((last - round) / statement) }, (_, i) => round + i * statement);
    const worker = async () => {
      for (let from = starts.shift(); from !== undefined; from = starts.shift()) {
        const [row] = await sql<{ held: number }[]>`
          select count(*) filter (where r ->> 'status' = 'held')::int as held from (
            select spendgate.reserve(jsonb_build_object(
              'scopes', jsonb_build_array(jsonb_build_object('kind', 'key', 'id', ${prefix} || '-' || (1 + i % ${keys}::integer))),
              'model', null, 'request_estimate', null, 'caller_estimate', jsonb_build_object('cost', ${cost}::text),
              'ttl_seconds', 60, 'idempotency_key', null, 'request_hash', md5(i::text), 'fallback_hold', '1.00'),
              now() - interval '1 hour') as r
            from generate_series(${from}::integer, ${Math.min(from + statement, last) - 1}::integer) i) made`;
        held += row!.held;
      }
    };
    await Promise.all([worker(), worker()]);
    await vacuumAnalyze(sql);
  }
  return held;
}

/** Fresh statistics and a vacuumed heap, as autovacuum keeps them on a database in steady use. Run before each
 * phase: so that no phase is timed on plans made for tables a tenth of their size, nor with autovacuum catching up
 * on the previous phase's inserts and updates in the middle of it. */
export async function vacuumAnalyze(sql: postgres.Sql): Promise<void> {
  await sql`vacuum analyze`;
}

export async function serverVersion(sql: postgres.Sql): Promise<string> {
  const [row] = await sql<{ server_version: string }[]>`show server_version`;
  return row!.server_version;
}
