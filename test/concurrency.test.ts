// Concurrency on the real server: many simultaneous requests, each on its own pooled connection, against one app.
// Budgets must never admit more than fits, overlapping scope sets must never deadlock, retries must charge once,
// and the audit must balance after everything.
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { postgresUrl } from './support/databases.ts';
import { type Harness, type Reply, type ScopeEntry, scopeOf, startHarness, uniqueId } from './support/harness.ts';

/** How many replies had each status, e.g. `{201: 100, 429: 200}`. */
function tally(replies: readonly Reply[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const reply of replies) counts[reply.status] = (counts[reply.status] ?? 0) + 1;
  return counts;
}

/** The error types of the replies that had one, counted. */
function errorTypes(replies: readonly Reply[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const reply of replies) {
    const type = reply.body?.error?.type;
    if (typeof type === 'string') counts[type] = (counts[type] ?? 0) + 1;
  }
  return counts;
}

/** Decimal text as an exact integer number of 1e-12 dollars (no float ever touches money here). */
const scale = 12;
function units(text: string): bigint {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) throw new Error(`not a decimal: ${text}`);
  const [, sign, whole = '0', fraction = ''] = match;
  if (fraction.length > scale) throw new Error(`too many decimals for the test: ${text}`);
  const value = BigInt(whole + fraction.padEnd(scale, '0'));
  return sign === '-' ? -value : value;
}

/** Exact units back to the API's money text (six places at least, as spendgate.money prints). */
function money(value: bigint): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, '0');
  let fraction = digits.slice(-scale).replace(/0+$/, '');
  fraction = fraction.padEnd(6, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -scale)}.${fraction}`;
}

/** A small deterministic PRNG (mulberry32), so a failing mixed run can be replayed with the same choices. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick<T>(items: readonly T[]): T {
      const item = items[Math.floor(next() * items.length)];
      if (item === undefined) throw new Error('pick from an empty list');
      return item;
    },
  };
}

function shuffle<T>(items: T[], random: ReturnType<typeof prng>): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

describe.skipIf(!postgresUrl)('concurrency on real Postgres', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('postgres', { pool: 40 });
  });
  afterAll(() => h?.close());
  afterEach(() => h.expectAuditOk());

  const reserve = (body: unknown, headers?: Record<string, string>) => h.service('POST', '/v1/reservations', body, headers);

  describe('one budget, hundreds of simultaneous holds', () => {
    it.each([
      { budget: '10.00', admitted: 100, full: '10.000000', remaining: '0.000000' },
      { budget: '7.05', admitted: 70, full: '7.000000', remaining: '0.050000' },
    ])('max_budget $budget admits exactly $admitted holds of 0.10 out of 300', async ({ budget, admitted, full, remaining }) => {
      const team = uniqueId('team');
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: budget })).status).toBe(200);
      const replies = await Promise.all(
        Array.from({ length: 300 }, (_, i) => reserve({ scopes: { team, key: `${team}-k${i}` }, estimate: { cost: '0.10' } })),
      );
      expect(tally(replies)).toEqual({ 201: admitted, 429: 300 - admitted });
      expect(errorTypes(replies)).toEqual({ budget_exceeded: 300 - admitted });

      // Every admission saw the state the one before it left: the team's reserved in the 201 answers is exactly
      // 0.10, 0.20, ... with no value twice (two holds admitted on the same snapshot would repeat one).
      const seen = replies.filter((r) => r.status === 201).map((r) => units(scopeOf(r, 'team', team).reserved));
      seen.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      expect(seen.map(money)).toEqual(Array.from({ length: admitted }, (_, i) => money(BigInt(i + 1) * units('0.10'))));

      // A refusal only ever happened on a full budget.
      for (const refused of replies.filter((r) => r.status === 429)) {
        expect(refused.body.error).toMatchObject({
          type: 'budget_exceeded',
          scope: { kind: 'team', id: team },
          max_budget: money(units(budget)),
          spend: '0.000000',
          reserved: full,
          requested: '0.100000',
        });
      }
      expect(await h.scope('team', team)).toMatchObject({ reserved: full, spend: '0.000000', remaining, in_flight: admitted });
    });
  });

  describe('overlapping scope sets in opposite orders', () => {
    it('200 reserves, then settles, releases, new reserves and sweeps at once: no deadlock, exact sums', async () => {
      const team = uniqueId('team');
      const org = uniqueId('org');
      const tags = [uniqueId('tag'), uniqueId('tag'), uniqueId('tag')];
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1000' })).status).toBe(200);
      expect((await h.admin('PUT', `/v1/limits/org/${org}`, { max_budget: '1000', max_parallel: 500 })).status).toBe(200);
      const n = 200;
      const key = (i: number) => `${team}-k${i}`;
      // Every fourth hold is short-lived, so that after the clock moves some holds are stale: sweeps then have work.
      const ttl = (i: number) => (i % 4 === 0 ? 30 : 600);
      const bodies = Array.from({ length: n }, (_, i) =>
        i % 2 === 0
          ? { scopes: { team, org, key: key(i), tag: tags }, estimate: { cost: '0.05' }, ttl_seconds: ttl(i) }
          : { scopes: { tag: [...tags].reverse(), key: key(i), org, team }, estimate: { cost: '0.05' }, ttl_seconds: ttl(i) },
      );
      const held = await Promise.all(bodies.map((body) => reserve(body)));
      expect(tally(held)).toEqual({ 201: n });
      expect(await h.scope('team', team)).toMatchObject({ reserved: '10.000000', in_flight: n });
      for (const tag of tags) expect(await h.scope('tag', tag)).toMatchObject({ reserved: '10.000000', in_flight: n });

      h.clock.advance(60);
      const cents = (i: number) => (i % 13) + 1; // 0.01 .. 0.13: some settles charge above the 0.05 hold
      const cost = (i: number) => `0.${String(cents(i)).padStart(2, '0')}`;
      // New holds in both orders keep arriving meanwhile (indices n .. n + 99, long-lived).
      type Op = { kind: 'settle' | 'release' | 'reserve'; i: number } | { kind: 'sweep' };
      const ops: Op[] = [
        ...Array.from({ length: n }, (_, i): Op => ({ kind: i % 2 === 0 ? 'settle' : 'release', i })),
        ...Array.from({ length: 100 }, (_, i): Op => ({ kind: 'reserve', i: n + i })),
        ...Array.from({ length: 20 }, (): Op => ({ kind: 'sweep' })),
      ];
      shuffle(ops, prng(2));
      const results = await Promise.all(
        ops.map(async (op) => {
          if (op.kind === 'sweep') return { op, reply: await h.as('cron')('POST', '/v1/sweep') };
          if (op.kind === 'reserve') {
            const scopes = op.i % 2 === 0 ? { org, tag: tags, team, key: key(op.i) } : { key: key(op.i), team, tag: [...tags].reverse(), org };
            return { op, reply: await reserve({ scopes, estimate: { cost: '0.05' } }) };
          }
          const id = held[op.i]!.body.id as string;
          const reply =
            op.kind === 'settle'
              ? await h.service('POST', `/v1/reservations/${id}/settle`, { cost: cost(op.i) })
              : await h.service('POST', `/v1/reservations/${id}/release`);
          return { op, reply };
        }),
      );
      expect(tally(results.map((r) => r.reply))).toEqual({ 200: n + 20, 201: 100 });
      let swept = 0;
      for (const { op, reply } of results) {
        if (op.kind === 'sweep') {
          swept += reply.body.expired as number;
        } else if (op.kind === 'reserve') {
          expect(reply.body.status).toBe('held');
        } else if (op.kind === 'settle') {
          expect(reply.body).toMatchObject({ status: 'settled', actual_cost: money(units(cost(op.i))), late: ttl(op.i) === 30 });
        } else {
          expect(reply.body.status).toBe(ttl(op.i) === 30 ? 'expired' : 'released');
        }
      }
      // Only the 50 stale holds can have been swept; settles and releases that got there first expired the rest.
      // (The 100 new holds live 600 s.)
      expect(swept).toBeGreaterThanOrEqual(0);
      expect(swept).toBeLessThanOrEqual(50);
      expect((await h.as('cron')('POST', '/v1/sweep')).body).toEqual({ expired: 0, complete: true, webhooks: null });

      let total = 0;
      for (let i = 0; i < n; i += 2) total += cents(i);
      const spend = money(BigInt(total) * units('0.01'));
      for (const [kind, id] of [['team', team], ['org', org], ...tags.map((t) => ['tag', t])] as const) {
        expect(await h.scope(kind, id)).toMatchObject({ spend, reserved: '5.000000', in_flight: 100 });
      }
      for (const i of [0, 1, 2, 3, 198, 199]) {
        expect(await h.scope('key', key(i))).toMatchObject({
          spend: i % 2 === 0 ? money(units(cost(i))) : '0.000000',
          reserved: '0.000000',
          in_flight: 0,
        });
      }
    });
  });

  describe('concurrent retries', () => {
    it('50 simultaneous reserves with one idempotency key hold once', async () => {
      const key = uniqueId('key');
      const idem = uniqueId('req');
      const body = { scopes: { key }, estimate: { cost: '0.10' }, idempotency_key: idem };
      const replies = await Promise.all(Array.from({ length: 50 }, () => reserve(body)));
      expect(tally(replies)).toEqual({ 200: 49, 201: 1 });
      const first = replies.find((r) => r.status === 201)!;
      for (const reply of replies) {
        expect(reply.body.id).toBe(first.body.id);
        expect(reply.headers.get('idempotent-replayed')).toBe(reply.status === 200 ? 'true' : null);
      }
      expect(await h.scope('key', key)).toMatchObject({ reserved: '0.100000', in_flight: 1, requests_in_window: 1 });
    });

    it('one idempotency key with 20 different bodies at once: one hold, 19 conflicts', async () => {
      const key = uniqueId('key');
      const idem = uniqueId('req');
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) => reserve({ scopes: { key }, estimate: { cost: `0.${String(i + 1).padStart(2, '0')}` } }, { 'idempotency-key': idem })),
      );
      expect(tally(replies)).toEqual({ 201: 1, 409: 19 });
      expect(errorTypes(replies)).toEqual({ conflict: 19 });
      const winner = replies.find((r) => r.status === 201)!;
      for (const reply of replies.filter((r) => r.status === 409)) expect(reply.body.error.reservation_id).toBe(winner.body.id);
      expect(await h.scope('key', key)).toMatchObject({ reserved: winner.body.reserved_cost, in_flight: 1 });
    });

    it('50 simultaneous settles with the same body charge once', async () => {
      const key = uniqueId('key');
      const held = await reserve({ scopes: { key }, estimate: { cost: '0.10' } });
      expect(held.status).toBe(201);
      const replies = await Promise.all(
        Array.from({ length: 50 }, () => h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '0.07' })),
      );
      expect(tally(replies)).toEqual({ 200: 50 });
      for (const reply of replies) {
        expect(reply.body).toMatchObject({ id: held.body.id, status: 'settled', actual_cost: '0.070000', released_cost: '0.030000' });
      }
      expect(replies.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(49);
      expect(await h.scope('key', key)).toMatchObject({ spend: '0.070000', reserved: '0.000000', in_flight: 0 });
    });

    it('50 simultaneous settles with different bodies: one wins, 49 conflicts', async () => {
      const key = uniqueId('key');
      const held = await reserve({ scopes: { key }, estimate: { cost: '1.00' } });
      expect(held.status).toBe(201);
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: `0.${String(i + 1).padStart(2, '0')}` }),
        ),
      );
      expect(tally(replies)).toEqual({ 200: 1, 409: 49 });
      expect(errorTypes(replies)).toEqual({ conflict: 49 });
      const winner = replies.find((r) => r.status === 200)!;
      expect(await h.scope('key', key)).toMatchObject({ spend: winner.body.actual_cost, reserved: '0.000000', in_flight: 0 });
      expect((await h.service('GET', `/v1/reservations/${held.body.id}`)).body.actual_cost).toBe(winner.body.actual_cost);
    });

    it('50 simultaneous releases return the hold once', async () => {
      const team = uniqueId('team');
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', tpm: 10000 })).status).toBe(200);
      const held = await reserve({ scopes: { team }, estimate: { cost: '0.40', tokens: 500 } });
      expect(held.status).toBe(201);
      const replies = await Promise.all(Array.from({ length: 50 }, () => h.service('POST', `/v1/reservations/${held.body.id}/release`)));
      expect(tally(replies)).toEqual({ 200: 50 });
      for (const reply of replies) expect(reply.body).toMatchObject({ status: 'released', released_cost: '0.400000' });
      expect(await h.scope('team', team)).toMatchObject({ spend: '0.000000', reserved: '0.000000', in_flight: 0, tokens_in_window: 0 });
    });

    it('a settle racing a release on each of 60 holds: exactly one of the two wins each race', async () => {
      const team = uniqueId('team');
      const held = await Promise.all(Array.from({ length: 60 }, () => reserve({ scopes: { team }, estimate: { cost: '0.20' } })));
      expect(tally(held)).toEqual({ 201: 60 });
      const races = await Promise.all(
        held.map((r) =>
          Promise.all([
            h.service('POST', `/v1/reservations/${r.body.id}/settle`, { cost: '0.15' }),
            h.service('POST', `/v1/reservations/${r.body.id}/release`),
          ]),
        ),
      );
      let settled = 0;
      for (const [settle, release] of races) {
        expect([settle.status, release.status].sort()).toEqual([200, 409]);
        if (settle.status === 200) {
          settled += 1;
          expect(settle.body.status).toBe('settled');
          expect(release.body.error.type).toBe('conflict');
        } else {
          expect(release.body.status).toBe('released');
          expect(settle.body.error.type).toBe('conflict');
        }
      }
      expect(await h.scope('team', team)).toMatchObject({
        spend: money(BigInt(settled) * units('0.15')),
        reserved: '0.000000',
        in_flight: 0,
      });
    });
  });

  describe('stale holds under a burst, with no sweeper', () => {
    it.each([
      { case: 'new keys', share: false },
      { case: 'the stale holds\' own keys', share: true },
    ])('a full budget of expired holds admits exactly what they held back ($case)', async ({ share }) => {
      const team = uniqueId('team');
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1.00' })).status).toBe(200);
      const old = (i: number) => `${team}-old${i}`;
      const stale = await Promise.all(
        Array.from({ length: 10 }, (_, i) => reserve({ scopes: { team, key: old(i) }, estimate: { cost: '0.10' }, ttl_seconds: 30 })),
      );
      expect(tally(stale)).toEqual({ 201: 10 });
      h.clock.advance(31);
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          reserve({ scopes: { team, key: share ? old(j % 10) : `${team}-new${j}` }, estimate: { cost: '0.10' } }),
        ),
      );
      expect(tally(replies)).toEqual({ 201: 10, 429: 40 });
      expect(errorTypes(replies)).toEqual({ budget_exceeded: 40 });
      for (const r of stale) expect((await h.service('GET', `/v1/reservations/${r.body.id}`)).body.status).toBe('expired');
      expect(await h.scope('team', team)).toMatchObject({ reserved: '1.000000', in_flight: 10 });
    });
  });

  describe('rate and parallel limits under a burst', () => {
    it('rpm 20: exactly 20 of 200 simultaneous reserves are admitted', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { rpm: 20 })).status).toBe(200);
      const replies = await Promise.all(Array.from({ length: 200 }, () => reserve({ scopes: { key }, estimate: { cost: '0.01' } })));
      expect(tally(replies)).toEqual({ 201: 20, 429: 180 });
      expect(errorTypes(replies)).toEqual({ rate_limit_exceeded: 180 });
      for (const refused of replies.filter((r) => r.status === 429)) {
        expect(refused.body.error).toMatchObject({ limit_type: 'rpm', limit: 20, used: 20 });
      }
      expect(await h.scope('key', key)).toMatchObject({ requests_in_window: 20, in_flight: 20, reserved: '0.200000' });
    });

    it('max_parallel 5: exactly 5 of 100 simultaneous reserves are admitted', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { max_parallel: 5 })).status).toBe(200);
      const replies = await Promise.all(Array.from({ length: 100 }, () => reserve({ scopes: { key }, estimate: { cost: '0.01' } })));
      expect(tally(replies)).toEqual({ 201: 5, 429: 95 });
      expect(errorTypes(replies)).toEqual({ parallel_limit_exceeded: 95 });
      for (const refused of replies.filter((r) => r.status === 429)) {
        expect(refused.body.error).toMatchObject({ limit_type: 'max_parallel', limit: 5, used: 5 });
      }
      expect(await h.scope('key', key)).toMatchObject({ in_flight: 5, reserved: '0.050000' });
    });

    it('tpm 1000: exactly 3 holds of 300 tokens out of 60 simultaneous', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 1000 })).status).toBe(200);
      const replies = await Promise.all(
        Array.from({ length: 60 }, () => reserve({ scopes: { key }, estimate: { cost: '0.01', tokens: 300 } })),
      );
      expect(tally(replies)).toEqual({ 201: 3, 429: 57 });
      expect(errorTypes(replies)).toEqual({ rate_limit_exceeded: 57 });
      for (const refused of replies.filter((r) => r.status === 429)) {
        expect(refused.body.error).toMatchObject({ limit_type: 'tpm', limit: 1000, used: 900, requested: 300 });
      }
      expect(await h.scope('key', key)).toMatchObject({ tokens_in_window: 900, in_flight: 3 });
    });
  });

  describe('a hot row held too long', () => {
    it('reserve, settle and release answer 503 after the lock_timeout and write nothing', async () => {
      const team = uniqueId('team');
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '5' })).status).toBe(200);
      const first = await reserve({ scopes: { team }, estimate: { cost: '0.50' } });
      const second = await reserve({ scopes: { team }, estimate: { cost: '0.25' } });
      expect([first.status, second.status]).toEqual([201, 201]);
      const before = await h.scope('team', team);

      const blocker = postgres(h.url!, { max: 1, onnotice: () => {} });
      let release = () => {};
      let replies: Reply[] = [];
      try {
        release = await new Promise<() => void>((resolve, reject) => {
          blocker
            .begin(async (tx) => {
              await tx`select 1 from spendgate.counters where kind = 'team' and id = ${team} and model = '' for update`;
              await new Promise<void>((done) => resolve(done));
            })
            .catch(reject);
        });
        const started = Date.now();
        replies = await Promise.all([
          reserve({ scopes: { team }, estimate: { cost: '0.10' } }),
          h.service('POST', `/v1/reservations/${first.body.id}/settle`, { cost: '0.40' }),
          h.service('POST', `/v1/reservations/${second.body.id}/release`),
        ]);
        release();
        // Bounded by the lock_timeout (5 s), not left waiting on the row.
        expect(Date.now() - started).toBeLessThan(15_000);
      } finally {
        release();
        await blocker.end({ timeout: 5 });
      }
      expect(replies.map((r) => r.status)).toEqual([503, 503, 503]);
      for (const reply of replies) {
        expect(reply.body.error.type).toBe('unavailable');
        expect(reply.headers.get('retry-after')).toBe('1');
      }
      expect(await h.scope('team', team)).toEqual(before);
      for (const r of [first, second]) expect((await h.service('GET', `/v1/reservations/${r.body.id}`)).body.status).toBe('held');
      // Once the row is free the same calls go through.
      expect((await h.service('POST', `/v1/reservations/${first.body.id}/settle`, { cost: '0.40' })).body.actual_cost).toBe('0.400000');
      expect((await h.service('POST', `/v1/reservations/${second.body.id}/release`)).status).toBe(200);
      expect(await h.scope('team', team)).toMatchObject({ spend: '0.400000', reserved: '0.000000', in_flight: 0 });
    });
  });

  describe('a call that waited on a lock across a minute boundary', () => {
    // Postgres's now() is the time a transaction started. A reserve that started at 12:00:59 and waited on a row
    // lock can run after one that started at 12:01:01 has moved the scope's rate window on. Here the manual clock
    // plays now(): A takes its time, blocks on a counter row another transaction holds, B runs a window later,
    // then A goes on. The requests counted so far must not be lost: with rpm 3, R0 (12:00:30) and B (12:01:01)
    // admitted, the window at 12:01:01 weighs 59/60 × (previous minute) + (this minute) ≈ 1.98, so exactly one
    // more request fits — A or a later one, whichever way A is counted — never three.
    it('does not wipe the requests already counted in the rate window', async () => {
      const team = uniqueId('team');
      const keyA = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, { rpm: 3 })).status).toBe(200);
      const minute = 60_000;
      const base = Math.ceil(h.clock.now()!.getTime() / minute) * minute + minute;
      h.clock.set(new Date(base + 30_000));
      expect((await reserve({ scopes: { team }, estimate: { cost: '0.01' } })).status).toBe(201); // R0
      const first = await reserve({ scopes: { key: keyA }, estimate: { cost: '0.01' } }); // creates A's other counter
      expect((await h.service('POST', `/v1/reservations/${first.body.id}/release`)).status).toBe(200);

      const afterB: Reply[] = [];
      const blocker = postgres(h.url!, { max: 1, onnotice: () => {} });
      let release = () => {};
      try {
        release = await new Promise<() => void>((resolve, reject) => {
          blocker
            .begin(async (tx) => {
              await tx`select 1 from spendgate.counters where kind = 'key' and id = ${keyA} and model = '' for update`;
              await new Promise<void>((done) => resolve(done));
            })
            .catch(reject);
        });
        h.clock.set(new Date(base + 59_000));
        const pendingA = reserve({ scopes: { key: keyA, team }, estimate: { cost: '0.01' } });
        // Bounded wait until A is queued behind the row lock (its time is taken by then).
        const deadline = Date.now() + 10_000;
        for (;;) {
          const [row] = await h.db.query<{ n: number }>(
            `select count(*)::int as n from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock' and query like '%spendgate.reserve(%'`,
          );
          if (row!.n === 1) break;
          if (Date.now() > deadline) throw new Error('reserve A never waited on the lock');
        }
        h.clock.set(new Date(base + minute + 1_000));
        const b = await reserve({ scopes: { team }, estimate: { cost: '0.01' } });
        expect(b.status).toBe(201);
        release();
        const a = await pendingA;
        afterB.push(a);
      } finally {
        release();
        await blocker.end({ timeout: 5 });
      }
      for (let i = 0; i < 3; i++) afterB.push(await reserve({ scopes: { team }, estimate: { cost: '0.01' } }));
      expect(tally(afterB)).toEqual({ 201: 1, 429: 3 });
      expect(errorTypes(afterB)).toEqual({ rate_limit_exceeded: 3 });
      expect(await h.scope('team', team)).toMatchObject({ requests_in_window: 3, in_flight: 3 });
    });
  });

  describe('mixed load', () => {
    it('2000 random operations over 64 workers keep every budget and the ledger exact', async () => {
      const random = prng(20260310);
      const hour = 3600;
      const limits = {
        [`team:${uniqueId('t')}`]: { max_budget: '25.00' },
        [`team:${uniqueId('t')}`]: { max_budget: '3.00', budget_duration: '1h' },
        [`org:${uniqueId('o')}`]: { max_budget: '40.00', max_parallel: 12 },
        [`user:${uniqueId('u')}`]: { max_budget: '2.00', budget_duration: '1h', rpm: 40 },
        [`project:${uniqueId('p')}`]: { tpm: 3000 },
        [`tag:${uniqueId('g')}`]: { max_budget: '6.00' },
      } as const;
      const scopes = Object.entries(limits).map(([name, limitBody]) => {
        const [kind = '', id = ''] = name.split(':');
        return { kind, id, limit: limitBody as Record<string, unknown> };
      });
      const t0 = h.clock.now()!.getTime();
      for (const s of scopes) expect((await h.admin('PUT', `/v1/limits/${s.kind}/${s.id}`, s.limit)).status).toBe(200);

      interface Held {
        id: string;
        scopes: Array<{ kind: string; id: string }>;
        body: Record<string, unknown>;
      }
      const heldList: Held[] = [];
      const keyed: Held[] = [];
      const stats: Record<string, number> = {};
      /** First (non-replayed) settle answers: reservation, cost, and the clock time it was charged at. */
      const charges: Array<{ held: Held; cost: string; at: number }> = [];
      const violations: string[] = [];
      const unexpected: string[] = [];
      const costs = ['0.01', '0.02', '0.05', '0.10', '0.25', '0.333333'];
      const settleCosts = ['0', '0.01', '0.04', '0.10', '0.30', '0.75'];
      let idem = 0;

      const check = (what: string, reply: Reply, allowed: Record<number, readonly string[] | null>) => {
        const label = `${what} ${reply.status} ${reply.body?.error?.type ?? ''}`;
        stats[label] = (stats[label] ?? 0) + 1;
        const types = allowed[reply.status];
        if (types === undefined || (types !== null && !types.includes(reply.body?.error?.type))) {
          unexpected.push(`${what} → ${reply.status} ${JSON.stringify(reply.body).slice(0, 400)}`);
          return false;
        }
        return true;
      };

      const checkAdmission = (reply: Reply) => {
        for (const s of reply.body.scopes as ScopeEntry[]) {
          if (s.max_budget !== null && units(s.spend) + units(s.reserved) > units(s.max_budget)) {
            violations.push(`${s.kind} ${s.id}: spend ${s.spend} + reserved ${s.reserved} > max_budget ${s.max_budget}`);
          }
          if (s.max_parallel !== null && s.in_flight > s.max_parallel) violations.push(`${s.kind} ${s.id}: in_flight ${s.in_flight} > ${s.max_parallel}`);
          if (s.rpm !== null && s.requests_in_window > s.rpm) violations.push(`${s.kind} ${s.id}: ${s.requests_in_window} requests > rpm ${s.rpm}`);
          if (s.tpm !== null && s.tokens_in_window > s.tpm) violations.push(`${s.kind} ${s.id}: ${s.tokens_in_window} tokens > tpm ${s.tpm}`);
        }
      };

      const operation = async (at: number) => {
        const roll = random.next();
        const someHeld = heldList.length > 0 ? random.pick(heldList) : null;
        if (roll < 0.5 || someHeld === null) {
          if (random.next() < 0.05 && keyed.length > 0) {
            // A retry of a reservation that was admitted: the same body and key answer it again.
            const retried = random.pick(keyed);
            const reply = await reserve(retried.body);
            if (check('retry', reply, { 200: null }) && reply.body.id !== retried.id) unexpected.push(`retry of ${retried.id} answered ${reply.body.id}`);
            return;
          }
          const chosen = scopes.filter(() => random.next() < 0.35);
          const named = chosen.length > 0 ? chosen : [random.pick(scopes)];
          const body: Record<string, unknown> = {
            // Both teams are one kind with several ids: {"team": [a, b]}.
            scopes: named.reduce<Record<string, string[]>>((acc, s) => ({ ...acc, [s.kind]: [...(acc[s.kind] ?? []), s.id] }), {}),
            estimate: { cost: random.pick(costs), tokens: 10 + random.int(300) },
            ttl_seconds: random.pick([30, 120, 600]),
          };
          if (random.next() < 0.3) body.idempotency_key = `mixed-${process.pid}-${++idem}`;
          const reply = await reserve(body);
          if (!check('reserve', reply, { 201: null, 429: ['budget_exceeded', 'rate_limit_exceeded', 'parallel_limit_exceeded'] })) return;
          if (reply.status === 201) {
            checkAdmission(reply);
            const held = { id: reply.body.id as string, scopes: named.map(({ kind, id }) => ({ kind, id })), body };
            heldList.push(held);
            if ('idempotency_key' in body) keyed.push(held);
          }
          return;
        }
        if (roll < 0.72) {
          const cost = random.pick(settleCosts);
          const reply = await h.service('POST', `/v1/reservations/${someHeld.id}/settle`, { cost });
          if (check('settle', reply, { 200: null, 409: ['conflict'] }) && reply.status === 200) {
            if (reply.body.actual_cost !== money(units(cost))) unexpected.push(`settle ${cost} answered ${reply.body.actual_cost}`);
            if (reply.headers.get('idempotent-replayed') !== 'true') charges.push({ held: someHeld, cost, at });
          }
          return;
        }
        if (roll < 0.84) {
          check('release', await h.service('POST', `/v1/reservations/${someHeld.id}/release`), { 200: null, 409: ['conflict'] });
          return;
        }
        if (roll < 0.92) {
          check('extend', await h.service('POST', `/v1/reservations/${someHeld.id}/extend`, { ttl_seconds: random.pick([30, 300]) }), {
            200: null,
            409: ['conflict'],
          });
          return;
        }
        if (roll < 0.96) {
          check('sweep', await h.as('cron')('POST', '/v1/sweep'), { 200: null });
          return;
        }
        check('read', await h.service('GET', `/v1/reservations/${someHeld.id}`), { 200: null });
      };

      const total = 2000;
      const rounds = 8;
      const workers = 64;
      const jumps = [5, 45, 200, hour - 700, 90, 2 * hour, 20];
      for (let round = 0; round < rounds; round++) {
        let left = total / rounds;
        const at = h.clock.now()!.getTime();
        await Promise.all(
          Array.from({ length: workers }, async () => {
            while (left > 0) {
              left -= 1;
              await operation(at);
            }
          }),
        );
        const jump = jumps[round];
        if (jump !== undefined) h.clock.advance(jump);
      }

      if (process.env.TEST_LOG_MIXED) console.log({ held: heldList.length, charges: charges.length, stats });
      expect(unexpected).toEqual([]);
      expect(violations).toEqual([]);
      // The load did exercise every path it claims to.
      expect(heldList.length).toBeGreaterThan(100);
      expect(charges.length).toBeGreaterThan(50);
      expect(Object.keys(stats).sort()).toEqual(
        expect.arrayContaining([
          'extend 200 ', 'read 200 ', 'release 200 ', 'reserve 201 ', 'reserve 429 budget_exceeded',
          'reserve 429 parallel_limit_exceeded', 'reserve 429 rate_limit_exceeded', 'retry 200 ', 'settle 200 ',
          'settle 409 conflict', 'sweep 200 ',
        ]),
      );
      expect(charges.some((c) => units(c.cost) > units('0.333333'))).toBe(true);
      await h.expectAuditOk();

      // Spend, recomputed here from the settle answers: everything for scopes without a period, and only the
      // charges made in the current hour for the hourly ones.
      const now = h.clock.now()!.getTime();
      const period = (t: number) => Math.floor((t - t0) / (hour * 1000));
      for (const s of scopes) {
        const hourly = s.limit.budget_duration === '1h';
        let expected = 0n;
        for (const charge of charges) {
          if (!charge.held.scopes.some((x) => x.kind === s.kind && x.id === s.id)) continue;
          if (hourly && period(charge.at) !== period(now)) continue;
          expected += units(charge.cost);
        }
        expect((await h.scope(s.kind, s.id)).spend, `${s.kind} ${s.id}`).toBe(money(expected));
      }

      // A day later every hold has expired: nothing is reserved anywhere and the audit still balances.
      h.clock.advance(24 * hour);
      expect((await h.as('cron')('POST', '/v1/sweep')).status).toBe(200);
      for (const s of scopes) expect(await h.scope(s.kind, s.id)).toMatchObject({ reserved: '0.000000', in_flight: 0 });
    });
  });
});
