// Group commit on real Postgres: reserves and settles that arrive together share one transaction (run_batch), and
// each is still applied exactly as it would be alone. Budgets admit exactly what fits, a failing
// call does not take its batch-mates down with it, and batches whose calls name the same scopes in any order never
// deadlock.
import { Socket } from 'node:net';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseClock } from '../lib/clock.ts';
import type { Queryable } from '../lib/db.ts';
import { postgresDatabase } from '../lib/db/postgres.ts';
import { createLedger, type ReservePayload } from '../lib/ledger.ts';
import { freshDatabase, postgresUrl, type TestDatabase } from './support/databases.ts';

const payload = (scopes: Array<[string, string]>, cost: string, extra: Partial<ReservePayload> = {}): ReservePayload => ({
  scopes: scopes.map(([kind, id]) => ({ kind, id })),
  model: null,
  request_estimate: null,
  caller_estimate: { cost },
  ttl_seconds: 600,
  idempotency_key: null,
  request_hash: `hash-${Math.random()}`,
  fallback_hold: '1.00',
  max_hold: null,
  tpm_count: 'total',
  ...extra,
});

/** The database, counting the statements of each kind the ledger sends, and the batches that carried both kinds. */
function counted(db: Queryable) {
  const sent = { reserve: 0, settle: 0, batch: 0, mixedBatch: 0 };
  const wrapped: Queryable = {
    query: (text, params) => {
      if (text.includes('spendgate.run_batch(')) {
        sent.batch += 1;
        const calls = JSON.parse(String(params![0])) as Array<Record<string, unknown>>;
        if (calls.some((c) => 'reserve' in c) && calls.some((c) => 'settle' in c)) sent.mixedBatch += 1;
      } else if (text.includes('spendgate.reserve(')) sent.reserve += 1;
      else if (text.includes('spendgate.settle(')) sent.settle += 1;
      return db.query(text, params);
    },
  };
  return { db: wrapped, sent };
}

/** run_batch's calls: each payload as a reserve. */
const reserveCalls = (payloads: ReservePayload[]) => JSON.stringify(payloads.map((p) => ({ reserve: p })));

describe.skipIf(!postgresUrl)('group commit on real Postgres', () => {
  let database: TestDatabase;
  let sql: postgres.Sql;
  beforeAll(async () => {
    database = await freshDatabase('postgres', { pool: 16 });
    sql = postgres(database.url!, { max: 20, onnotice: () => {} });
  });
  afterAll(async () => {
    await sql?.end();
    await database?.drop();
  });

  const audit = async () => {
    const [row] = await sql<{ result: { ok: boolean; mismatches: unknown[] } }[]>`select spendgate.audit() as result`;
    expect(row!.result.mismatches).toEqual([]);
    expect(row!.result.ok).toBe(true);
  };

  it('200 reserves at once on a budget that fits 70 go as batches and admit exactly 70; their settles charge each once', async () => {
    await sql`select spendgate.put_limit('team', 'gc-budget', '{"max_budget": "0.07"}')`;
    const { db, sent } = counted(database.db);
    const ledger = createLedger(db, databaseClock, { maxBatch: 16, maxInFlight: 2 });
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => ledger.reserve(payload([['team', 'gc-budget'], ['key', `gc-key-${i % 7}`]], '0.001'))),
    );
    const held = answers.filter((a) => typeof a.id === 'string');
    const refused = answers.filter((a) => (a.error as { type?: string } | undefined)?.type === 'budget_exceeded');
    expect(held).toHaveLength(70);
    expect(refused).toHaveLength(130);
    expect(sent.batch).toBeGreaterThan(0);
    expect(sent.reserve + sent.batch).toBeLessThan(200);
    const reserveBatches = sent.batch;

    const settled = await Promise.all(held.map((h) => ledger.settle(String(h.id), { cost: '0.0005', settle_hash: 'same' })));
    expect(settled.every((s) => s.status === 'settled' && s.actual_cost === '0.000500')).toBe(true);
    expect(sent.batch).toBeGreaterThan(reserveBatches);
    const [team] = await sql<{ spend: boolean; reserved: boolean; in_flight: number }[]>`
      select spend = 0.035 as spend, reserved = 0 as reserved, in_flight
        from spendgate.counters where kind = 'team' and id = 'gc-budget' and model = ''`;
    expect(team).toEqual({ spend: true, reserved: true, in_flight: 0 });
    await audit();
    console.log(`group commit: 200 reserves at once sent as ${reserveBatches} batches and ${sent.reserve} single calls, 70 admitted, ` +
      `130 refused; 70 settles as ${sent.batch - reserveBatches} batches and ${sent.settle} single calls, each charged once; audit ok`);
  });

  it('a call whose statement fails is answered with its error; its batch-mates are applied, each once', async () => {
    const { db, sent } = counted(database.db);
    const ledger = createLedger(db, databaseClock, { maxBatch: 16, maxInFlight: 1 });
    // A TTL the SQL cannot make an interval of: the route's schema refuses it, here it reaches the database.
    const bad = payload([['key', 'gc-bad']], '0.001', { ttl_seconds: 'soon' as unknown as number });
    const calls = [
      ...Array.from({ length: 5 }, (_, i) => ledger.reserve(payload([['key', `gc-good-${i}`]], '0.001'))),
      ledger.reserve(bad),
      ...Array.from({ length: 5 }, (_, i) => ledger.reserve(payload([['key', `gc-good-${i + 5}`]], '0.001'))),
    ];
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.map((o) => o.status)).toEqual([...Array(5).fill('fulfilled'), 'rejected', ...Array(5).fill('fulfilled')]);
    expect(sent.batch).toBeGreaterThan(0);
    const [counts] = await sql<{ held: number; bad: number }[]>`
      select count(*) filter (where id like 'gc-good-%')::int as held, count(*) filter (where id = 'gc-bad')::int as bad
        from spendgate.counters where in_flight = 1`;
    expect(counts).toEqual({ held: 10, bad: 0 });
    await audit();
  });

  it('batches naming the same new scopes in opposite orders, from many connections at once, never deadlock', async () => {
    const round = async (r: number) => {
      const scopes = Array.from({ length: 6 }, (_, i) => ({ kind: 'user', id: `gc-order-${r}-${i}` }));
      const items = (order: typeof scopes) => reserveCalls(order.map((scope, i) =>
        payload([[scope.kind, scope.id], [order[(i + 1) % order.length]!.kind, order[(i + 1) % order.length]!.id]], '0.001')));
      const forwards = items(scopes);
      const backwards = items([...scopes].reverse());
      await Promise.all(Array.from({ length: 8 }, (_, c) =>
        sql`select count(*) from spendgate.run_batch(${c % 2 ? forwards : backwards}::text::jsonb, null)`));
    };
    for (let r = 0; r < 10; r++) await round(r);
    const [row] = await sql<{ holds: number }[]>`
      select count(*)::int as holds from spendgate.reservation_counters where id like 'gc-order-%' and model = ''`;
    expect(row!.holds).toBe(10 * 8 * 6 * 2);
    await audit();
    console.log('group commit: 80 batches of 6 reserves naming new scopes in opposite orders, 8 connections at once: 0 deadlocks; audit ok');
  });

  it('reserves and settles that arrive together share batches; each is applied once, and an unknown id is answered alone', async () => {
    await sql`select spendgate.put_limit('team', 'gc-mixed', '{"max_budget": "1"}')`;
    const { db, sent } = counted(database.db);
    const ledger = createLedger(db, databaseClock, { maxBatch: 16, maxInFlight: 1 });
    const first = await Promise.all(Array.from({ length: 30 }, (_, i) => ledger.reserve(payload([['team', 'gc-mixed'], ['key', `gc-mixed-${i}`]], '0.001'))));
    expect(first.every((a) => typeof a.id === 'string')).toBe(true);
    const unknown = '00000000-0000-4000-8000-000000000000';
    const [settles, reserves, stray] = await Promise.all([
      Promise.allSettled(first.map((h) => ledger.settle(String(h.id), { cost: '0.0005', settle_hash: 'gc-mixed' }))),
      Promise.all(Array.from({ length: 30 }, (_, i) => ledger.reserve(payload([['team', 'gc-mixed'], ['key', `gc-mixed-${i}`]], '0.002')))),
      ledger.settle(unknown, { cost: '0.0005', settle_hash: 'gc-mixed' }).then(() => 'settled', (error: { type?: string }) => error.type),
    ]);
    expect(sent.mixedBatch).toBeGreaterThan(0);
    expect(settles.map((s) => s.status === 'fulfilled' && s.value.status)).toEqual(Array(30).fill('settled'));
    expect(reserves.every((a) => a.status === 'held')).toBe(true);
    expect(stray).toBe('not_found');
    const [team] = await sql<{ spend: string; reserved: string; in_flight: number; requests: number }[]>`
      select spend::text, reserved::text, in_flight, requests_cur + requests_prev as requests
        from spendgate.counters where kind = 'team' and id = 'gc-mixed' and model = ''`;
    expect(team).toEqual({ spend: '0.0150', reserved: '0.060', in_flight: 30, requests: 60 });
    await audit();
    console.log(`group commit: 30 settles and 30 reserves at once on one team, ${sent.mixedBatch} of ${sent.batch} batches carrying both; ` +
      'each applied once; audit ok');
  });

  it('batches settling holds on one set of scopes while reserving on another, from many connections at once, never deadlock', async () => {
    // Connections of one parity reserve on group a's scopes (half of them in the opposite order) and settle holds on
    // group b's, the others the other way round: each batch needs counters that the other parity's batches hold.
    const group = (name: string) => Array.from({ length: 4 }, (_, i) => ({ kind: 'user', id: `gc-churn-${name}-${i}` }));
    const groups = [group('a'), group('b')];
    const reserves = (order: Array<{ kind: string; id: string }>) => order.map((scope, i) =>
      ({ reserve: payload([[scope.kind, scope.id], [order[(i + 1) % order.length]!.kind, order[(i + 1) % order.length]!.id]], '0.001') }));
    let held: string[][] = Array.from({ length: 8 }, () => []);
    for (let r = 0; r < 10; r++) {
      const answers = await Promise.all(Array.from({ length: 8 }, (_, c) => {
        const mine = groups[c % 2]!;
        // The holds of two connections of the other parity, each of which another connection settles too (a replay).
        const settles = [...held[(c + 1) % 8]!, ...held[(c + 3) % 8]!].map((id) => ({ settle: { cost: '0.0005', settle_hash: 'churn' }, id }));
        const calls = [...reserves(c % 4 < 2 ? mine : [...mine].reverse()), ...settles];
        return sql<{ result: { id?: string; status?: string } }[]>`
          select result from spendgate.run_batch(${JSON.stringify(calls)}::text::jsonb, null) as result`;
      }));
      const results = answers.map((rows) => rows.map((row) => row.result));
      expect(results.flat().filter((a) => a.status === 'settled')).toHaveLength(2 * held.flat().length);
      held = results.map((rows) => rows.filter((a) => a.status === 'held').map((a) => a.id!));
      expect(held.flat()).toHaveLength(8 * 4);
    }
    const [row] = await sql<{ settled: number; live: number }[]>`
      select count(*) filter (where r.status = 'settled')::int as settled, count(*) filter (where r.status = 'held')::int as live
        from spendgate.reservations r
       where exists (select from spendgate.reservation_counters rc where rc.reservation_id = r.id and rc.id like 'gc-churn-%')`;
    expect(row).toEqual({ settled: 9 * 8 * 4, live: 8 * 4 });
    await audit();
    console.log('group commit: 80 batches, each reserving on one set of scopes and settling on the other, 8 connections at once: ' +
      '0 deadlocks; audit ok');
  });

  it('a batch finds each reserve\'s model in the price table as a lone reserve does, and charges that model\'s limit', async () => {
    // Asked as a bare name, found under its provider's prefix: the limit is on the price table's name.
    await sql`select spendgate.put_model('openai/gc-model', '{"input_cost_per_token": "0.000001", "output_cost_per_token": "0.000002"}')`;
    await sql`select spendgate.put_limit('key', 'gc-model-key', '{"max_budget": "10", "models": {"openai/gc-model": {"max_budget": "0.0025"}}}')`;
    const items = reserveCalls([
      ...Array.from({ length: 4 }, () => payload([['key', 'gc-model-key']], '0.001', { model: 'gc-model' })),
      payload([['key', 'gc-model-key']], '0.001'),
    ]);
    const answers = await sql<{ result: { status?: string; error?: { type: string; scope: { model?: string } } } }[]>`
      select result from spendgate.run_batch(${items}::text::jsonb, null) as result`;
    expect(answers.map((a) => a.result.status ?? `${a.result.error?.type} on ${a.result.error?.scope.model}`))
      .toEqual(['held', 'held', 'budget_exceeded on openai/gc-model', 'budget_exceeded on openai/gc-model', 'held']);
    await audit();
  });

  it('a lone reserve, a lone settle and a batch are written to the database at once, not at the event loop\'s next turn', async () => {
    // postgres.js holds a message under 1 KiB until setImmediate; the ledger pads its calls' JSON past that (see
    // jsonSentAtOnce). Each statement is marked by an immediate scheduled as it is sent: its socket write must come first.
    // One connection: a statement never waits for a connection to open.
    const db = postgresDatabase(database.url!, { max: 1 });
    const events: string[] = [];
    const marked: Queryable = {
      query: (text, params) => {
        const name = /spendgate\.(\w+)\(/.exec(text)![1]!;
        events.push(`sent ${name}`);
        setImmediate(() => events.push(`next turn after ${name}`));
        return db.query(text, params);
      },
    };
    const ledger = createLedger(marked, databaseClock, { maxBatch: 16, maxInFlight: 1 });
    const hold = async () => String((await ledger.reserve(payload([['key', 'gc-at-once']], '0.001'))).id);
    // A settle, then three reserves at once: the first goes alone, the two that arrive while it runs go as a batch.
    const round = async (id: string) => {
      await ledger.settle(id, { cost: '0.0005', settle_hash: 'at-once' });
      return (await Promise.all([hold(), hold(), hold()]))[0];
    };
    // A statement's first use on a connection prepares it (Parse, Describe), which postgres.js sends at its own pace.
    const id = await round(await hold());
    events.length = 0;
    const write = Socket.prototype.write;
    Socket.prototype.write = function (this: Socket, ...args: unknown[]) {
      events.push('written');
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    };
    try {
      await round(id);
    } finally {
      Socket.prototype.write = write;
      await db.close();
    }
    const sent = events.filter((event) => event.startsWith('sent '));
    expect(sent).toEqual(['sent settle', 'sent reserve', 'sent run_batch']);
    for (const event of sent) {
      const at = events.indexOf(event);
      expect(events.slice(at + 1, at + 3)).toEqual(['written', `next turn after ${event.slice(5)}`]);
    }
    await audit();
  });

  it('every state change runs with generic plans only, so that its statements are planned once per connection, not at every call', async () => {
    // Left to choose, Postgres planned statements over a few keys passed as an array (`where id = any (ids)`,
    // `from unnest(keys)`) again at every call: the plan for those few keys is always estimated cheaper than the
    // generic one (see 0003_ledger.sql).
    const rows = await sql<{ name: string; config: string[] | null }[]>`
      select p.oid::regprocedure::text as name, p.proconfig as config from pg_proc p
       where p.oid in ('spendgate.run_batch(jsonb, timestamptz)'::regprocedure, 'spendgate.reserve(jsonb, timestamptz)'::regprocedure,
                       'spendgate.settle(uuid, jsonb, timestamptz)'::regprocedure, 'spendgate.release(uuid, timestamptz)'::regprocedure,
                       'spendgate.extend(uuid, integer, timestamptz)'::regprocedure, 'spendgate.sweep(timestamptz, integer)'::regprocedure)`;
    expect(rows).toHaveLength(6);
    for (const row of rows) expect(row.config, row.name).toContain('plan_cache_mode=force_generic_plan');
  });

  it('a batch answers and charges as the same calls one by one would: with refusals that expire stale holds, late settles and replays', async () => {
    // Two twin worlds, on scopes of their own: world a's calls go as one batch, world b's one by one in the same order,
    // at the same time. The batch keeps its counters in memory; the calls that need the table (a reserve that would be
    // refused expires stale holds first, a replay shows its counters as they stand) go alone inside it.
    const before = '2026-01-01T00:00:00Z';
    const at = '2026-01-01T00:01:00Z';
    const world = async (w: 'a' | 'b') => {
      const team: [string, string] = ['team', `gc-twin-${w}`];
      const key = (n: number): [string, string] => ['key', `gc-twin-${w}-${n}`];
      await sql`select spendgate.put_limit('team', ${`gc-twin-${w}`}, '{"max_budget": "0.010"}')`;
      const hold = async (n: number, cost: string, ttl: number) => {
        const [row] = await sql<{ result: { id: string } }[]>`
          select spendgate.reserve(${JSON.stringify(payload([team, key(n)], cost, { ttl_seconds: ttl }))}::text::jsonb,
                                   ${before}::timestamptz) as result`;
        return row!.result.id;
      };
      const stale = await hold(1, '0.006', 1);
      const late = await hold(2, '0.001', 1);
      const live = await hold(3, '0.001', 600);
      const reserve = (n: number, cost: string, extra: Partial<ReservePayload> = {}) =>
        ({ reserve: payload([team, key(n)], cost, { request_hash: `twin-${n}`, ...extra }) });
      const settle = (id: string, cost: string) => ({ settle: { cost, settle_hash: `twin-${cost}` }, id });
      const calls = [
        reserve(4, '0.0015'), // fits beside the three holds: 0.0095 of 0.010
        reserve(5, '0.003'), // fits only once the stale holds have expired
        settle(late, '0.0005'), // expired by then: a late settle
        settle(live, '0.002'),
        reserve(6, '0.001', { idempotency_key: `gc-twin-${w}` }),
        reserve(6, '0.001', { idempotency_key: `gc-twin-${w}` }), // a replay
        settle(live, '0.002'), // a replay
        settle('00000000-0000-4000-8000-00000000000' + (w === 'a' ? '1' : '2'), '0.001'),
        reserve(7, '0.009'), // refused: nothing left to expire
        reserve(8, '0.001'),
      ];
      let answers: Array<Record<string, unknown>>;
      if (w === 'a') {
        const rows = await sql<{ result: Record<string, unknown> }[]>`
          select result from spendgate.run_batch(${JSON.stringify(calls)}::text::jsonb, ${at}::timestamptz) as result`;
        answers = rows.map((row) => row.result);
      } else {
        answers = [];
        for (const call of calls) {
          const [row] = 'reserve' in call
            ? await sql<{ result: Record<string, unknown> }[]>`
                select spendgate.reserve(${JSON.stringify(call.reserve)}::text::jsonb, ${at}::timestamptz) as result`
            : await sql<{ result: Record<string, unknown> }[]>`
                select spendgate.settle(${call.id}::uuid, ${JSON.stringify(call.settle)}::text::jsonb, ${at}::timestamptz) as result`;
          answers.push(row!.result);
        }
      }
      const counters = await sql`
        select id, spend::text, reserved::text, in_flight, requests_cur, requests_prev, tokens_cur, tokens_prev
          from spendgate.counters where id like ${`gc-twin-${w}%`} order by id`;
      // The worlds differ only in their names and their reservations' ids.
      const same = (value: unknown) => JSON.parse(JSON.stringify(value)
        .replaceAll(`gc-twin-${w}`, 'gc-twin').replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'uuid')) as unknown;
      return { answers: same(answers) as Array<Record<string, unknown>>, counters: same(counters) };
    };
    const batch = await world('a');
    const alone = await world('b');
    expect(batch.answers.map((a) => (a.error as { type?: string } | undefined)?.type ?? `${a.status}${a.replayed ? ' again' : ''}${a.late ? ' late' : ''}`))
      .toEqual(['held', 'held', 'settled late', 'settled', 'held', 'held again', 'settled again', 'not_found', 'budget_exceeded', 'held']);
    expect(batch.answers).toEqual(alone.answers);
    expect(batch.counters).toEqual(alone.counters);
    expect((batch.counters as Array<{ id: string; spend: string; reserved: string }>).find((c) => c.id === 'gc-twin'))
      .toMatchObject({ spend: '0.0025', reserved: '0.0065' });
    await audit();
    console.log(`group commit: ${batch.answers.length} calls as one batch and one by one on twin scopes (a reserve that fits ` +
      'once stale holds expire, a refusal, a late settle, two replays, an unknown id): every answer and counter equal; audit ok');
  });

  it('a batch of reserves on scopes never seen, all refused, leaves no counter behind', async () => {
    await sql`select spendgate.put_limit('org', 'gc-closed', '{"max_budget": "0"}')`;
    const items = reserveCalls(Array.from({ length: 4 }, (_, i) => payload([['org', 'gc-closed'], ['user', `gc-ghost-${i}`]], '0.001')));
    const answers = await sql<{ result: { error?: { type: string } } }[]>`
      select result from spendgate.run_batch(${items}::text::jsonb, null) as result`;
    expect(answers.map((a) => a.result.error?.type)).toEqual(Array(4).fill('budget_exceeded'));
    const [row] = await sql<{ ghosts: number }[]>`select count(*)::int as ghosts from spendgate.counters where id like 'gc-ghost-%'`;
    expect(row!.ghosts).toBe(0);
    await audit();
  });
});
