// Many instances on one database, and crashes. Four server processes share a fresh Postgres database; two hundred
// concurrent callers reserve on overlapping scopes (budgets, a rate limit, a parallel limit), then settle, release or
// abandon their holds, each call going to any instance. Two instances are killed with SIGKILL mid-load (callers retry
// elsewhere with the same idempotency key, or give up as if they had crashed too) and a replacement joins. At the end
// the ledger is held to what the callers were told: no budget admitted more than fits, the rate limit kept to its
// two-window rule, no more holds at once than max_parallel, every hold accounted for (the abandoned and the orphaned
// ones expired by the sweeper), every settle charged exactly once, and the audit balances.
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresUrl } from './support/databases.ts';
import { type CallerPlan, type Fleet, runCaller, type Scope } from './support/gateway-clients.ts';
import { tokens } from './support/harness.ts';
import { send, sleep } from './support/load.ts';
import { micros, money } from './support/money.ts';
import { killServer, type ServerProcess, startedServers, startServer, stopAllServers } from './support/spendgate-processes.ts';

const windowSeconds = 5;
const rpm = 40; // requests per rate window, here 5 s
const maxParallel = 6;
const ttlSeconds = 3;
const loadMs = Number(process.env.FLEET_LOAD_MS ?? 12_000);
const callers = 200;

const scopes = {
  alpha: { kind: 'team', id: 'alpha', max_budget: '1.00' },
  beta: { kind: 'team', id: 'beta', max_budget: '1.50' },
  acme: { kind: 'org', id: 'acme', max_budget: '5.00' },
  globex: { kind: 'org', id: 'globex' },
  fast: { kind: 'tag', id: 'fast' },
  slots: { kind: 'tag', id: 'slots', max_parallel: maxParallel },
} satisfies Record<string, Scope>;

const plan: CallerPlan = {
  scopes: (c, n) => [
    c % 2 === 0 ? scopes.alpha : scopes.beta,
    c % 4 < 2 ? scopes.acme : scopes.globex,
    { kind: 'key', id: `key-${c % 50}` },
    ...((c + n) % 3 === 0 ? [scopes.fast] : []),
    ...((c + n) % 5 === 0 ? [scopes.slots] : []),
  ],
  holdCost: ['0.01', '0.02', '0.05'],
  settleCost: ['0', '0.004', '0.01', '0.007'],
  ttlSeconds,
  abandonsOnFailure: (c) => c % 10 === 0,
};

describe.skipIf(!postgresUrl)('many instances on one database, with crashes', () => {
  const name = `spendgate_fleet_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const url = (() => {
    if (!postgresUrl) return '';
    const u = new URL(postgresUrl);
    u.pathname = `/${name}`;
    return u.toString();
  })();
  const env = { DATABASE_URL: url, SPENDGATE_POOL_SIZE: '6', SPENDGATE_RATE_WINDOW_SECONDS: String(windowSeconds) };
  let fleet: Fleet;

  beforeAll(async () => {
    const server = postgres(postgresUrl!, { max: 1, onnotice: () => {} });
    await server.unsafe(`create database ${name}`);
    await server.end();
    // Started together, so they also race to migrate the fresh database.
    const alive = await Promise.all(Array.from({ length: 4 }, () => startServer(env)));
    fleet = { alive, stats: { requests: 0, retried: 0, replayedAfterFailure: 0, violations: [] }, holds: [] };
  }, 180_000);

  afterAll(async () => {
    await stopAllServers();
    const server = postgres(postgresUrl!, { max: 1, onnotice: () => {} });
    await server.unsafe(`drop database if exists ${name} with (force)`);
    await server.end();
  }, 60_000);

  it('200 callers on 4 instances, 2 killed mid-load: budgets, rate and parallel limits hold, every hold is accounted for', async () => {
    const admin = (method: string, path: string, body?: unknown) => send(fleet.alive[0]!.base, tokens.admin, method, path, body);
    for (const s of Object.values(scopes)) {
      const limit = { ...('max_budget' in s ? { max_budget: s.max_budget } : {}), ...('max_parallel' in s ? { max_parallel: s.max_parallel } : {}) };
      expect((await admin('PUT', `/v1/limits/${s.kind}/${s.id}`, s.id === 'fast' ? { rpm } : limit)).status).toBe(200);
    }

    const started = Date.now();
    const until = () => Date.now() - started > loadMs;
    const load = Promise.all(Array.from({ length: callers }, (_, c) => runCaller(fleet, plan, c, until)));
    // The cron: a sweep every second on any live instance.
    let sweeps = 0;
    const cron = (async () => {
      while (!until()) {
        const server = fleet.alive[sweeps % fleet.alive.length]!;
        const reply = await send(server.base, tokens.cron, 'POST', '/v1/sweep');
        if (reply.status === 200) sweeps += 1;
        await sleep(1_000);
      }
    })();
    // The crashes: an instance is taken out of rotation and killed at once (its in-flight calls get no answer).
    const crash = async (atMs: number) => {
      await sleep(atMs - (Date.now() - started));
      const victim = fleet.alive[1] as ServerProcess;
      fleet.alive = fleet.alive.filter((s) => s !== victim);
      killServer(victim);
      await victim.exited;
    };
    await crash(loadMs / 3);
    await crash(loadMs / 2);
    fleet.alive = [...fleet.alive, await startServer(env)];
    await Promise.all([load, cron]);

    // Abandoned holds (and those orphaned with a killed instance) expire through the sweeper once their ttl passes.
    await sleep(ttlSeconds * 1000 + 500);
    let orphansSwept = 0;
    for (const deadline = Date.now() + 30_000; ; ) {
      const reply = await send(fleet.alive[0]!.base, tokens.cron, 'POST', '/v1/sweep');
      expect(reply.status).toBe(200);
      orphansSwept += reply.body.expired;
      if (reply.body.expired === 0) break;
      if (Date.now() > deadline) throw new Error('the sweeps never caught up');
    }

    expect(fleet.stats.violations).toEqual([]);
    const db = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await expectEveryHoldAccountedFor(db, fleet);
      await expectBudgetsKept(db, fleet);
      await expectRateRuleKept(db);
      await expectParallelLimitKept(db);
    } finally {
      await db.end();
    }
    const audit = await admin('GET', '/v1/audit');
    expect(audit.body).toMatchObject({ ok: true, mismatches: [] });
    // What the servers printed, crashes and failures included, holds no token.
    for (const server of startedServers()) for (const token of Object.values(tokens)) expect(server.output()).not.toContain(token);

    const admitted = fleet.holds.filter((h) => h.id !== null).length;
    const refusals: Record<string, number> = {};
    for (const h of fleet.holds) if (h.refusal) refusals[h.refusal] = (refusals[h.refusal] ?? 0) + 1;
    console.log(
      `many instances: 4 instances + 1 replacement, ${callers} callers for ${loadMs / 1000} s, ${fleet.stats.requests} requests, ` +
        `${admitted} holds admitted, refusals ${JSON.stringify(refusals)}, 2 instances killed (SIGKILL), ${fleet.stats.retried} calls retried elsewhere ` +
        `(${fleet.stats.replayedAfterFailure} answered by replay), ${orphansSwept} stale holds expired by the final sweep, ${sweeps} cron sweeps; mismatches: 0`,
    );
    // The load did reach every limit it claims to test.
    expect(Object.keys(refusals).sort()).toEqual(['budget_exceeded', 'parallel_limit_exceeded', 'rate_limit_exceeded']);
    expect(fleet.stats.retried).toBeGreaterThan(0);
  }, 240_000);
});

type Sql = ReturnType<typeof postgres>;

/** Every reservation in the ledger is one a caller sent, in the state the caller left it; no hold is left held. */
async function expectEveryHoldAccountedFor(db: Sql, fleet: Fleet) {
  const rows = await db<{ key: string; id: string; status: string; actual_cost: string | null }[]>`
    select idempotency_key as key, id::text as id, status, spendgate.money(actual_cost) as actual_cost from spendgate.reservations`;
  const byKey = new Map(fleet.holds.map((h) => [h.key, h]));
  const inLedger = new Set<string>();
  for (const row of rows) {
    const hold = byKey.get(row.key);
    expect(hold, `reservation ${row.key} that no caller sent`).toBeDefined();
    inLedger.add(row.key);
    const want =
      hold!.outcome === 'settled'
        ? { status: 'settled', actual_cost: money(micros(hold!.settledCost!)) }
        : hold!.outcome === 'released'
          ? { status: 'released', actual_cost: null }
          : hold!.outcome === 'abandoned' || hold!.outcome === 'unanswered'
            ? { status: 'expired', actual_cost: null }
            : { status: 'none: the caller was refused', actual_cost: null };
    expect({ status: row.status, actual_cost: row.actual_cost }, `${row.key} (${hold!.outcome})`).toEqual(want);
    if (hold!.id !== null) expect(row.id, row.key).toBe(hold!.id);
  }
  for (const hold of fleet.holds) if (hold.id !== null) expect(inLedger.has(hold.key), `${hold.key} admitted but not in the ledger`).toBe(true);
}

/** Spend is exactly what the callers settled, once each, and never more than a budget (no hold was settled above
 * itself, so spend + reserved ≤ max_budget held at every admission too). */
async function expectBudgetsKept(db: Sql, fleet: Fleet) {
  for (const scope of Object.values(scopes)) {
    let settled = 0n;
    for (const h of fleet.holds) if (h.outcome === 'settled' && h.scopes.some((s) => s.kind === scope.kind && s.id === scope.id)) settled += micros(h.settledCost!);
    const [counter] = await db<{ spend: string; reserved: string; in_flight: number }[]>`
      select spendgate.money(spend) as spend, spendgate.money(reserved) as reserved, in_flight
        from spendgate.counters where kind = ${scope.kind} and id = ${scope.id} and model = ''`;
    expect(counter, `${scope.kind} ${scope.id}`).toEqual({ spend: money(settled), reserved: '0.000000', in_flight: 0 });
    if ('max_budget' in scope) expect(settled <= micros(scope.max_budget), `${scope.kind} ${scope.id} spent ${money(settled)}`).toBe(true);
  }
}

/** The rate limit's own rule, checked at every admission from the ledger's timestamps (the database's clock):
 * prev × (share of the window still to run) + requests already in this window + 1 ≤ limit. Hence also never more
 * than the limit in one window. */
async function expectRateRuleKept(db: Sql) {
  const rows = await db<{ at: string; window: string }[]>`
    select (extract(epoch from r.created_at) * 1000000)::bigint::text as at,
           (extract(epoch from r.window_start) * 1000000)::bigint::text as window
      from spendgate.reservations r join spendgate.reservation_counters rc on rc.reservation_id = r.id
     where rc.kind = 'tag' and rc.id = 'fast' order by r.created_at`;
  const w = BigInt(windowSeconds) * 1_000_000n;
  const counts = new Map<bigint, bigint>();
  for (const row of rows) {
    const at = BigInt(row.at);
    const start = BigInt(row.window);
    const prev = counts.get(start - w) ?? 0n;
    const cur = counts.get(start) ?? 0n;
    expect(prev * (w - (at - start)) + (cur + 1n) * w <= BigInt(rpm) * w, `admitted at ${row.at} with ${prev} before and ${cur} in this window`).toBe(true);
    counts.set(start, cur + 1n);
  }
  expect(Math.max(...[...counts.values()].map(Number))).toBeLessThanOrEqual(rpm);
}

/** At no instant were more holds live on the parallel-limited scope than max_parallel (from the ledger's stamps). */
async function expectParallelLimitKept(db: Sql) {
  const rows = await db<{ start: string; end: string }[]>`
    select (extract(epoch from r.created_at) * 1000000)::bigint::text as start,
           (extract(epoch from coalesce(r.expired_at, r.settled_at, r.released_at)) * 1000000)::bigint::text as end
      from spendgate.reservations r join spendgate.reservation_counters rc on rc.reservation_id = r.id
     where rc.kind = 'tag' and rc.id = 'slots'`;
  // Ends before starts at the same instant: a slot freed and taken in the same microsecond was never double-held.
  const events = rows.flatMap((r) => [{ at: BigInt(r.start), d: 1 }, { at: BigInt(r.end), d: -1 }]);
  events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.d - b.d));
  let live = 0;
  let most = 0;
  for (const e of events) {
    live += e.d;
    most = Math.max(most, live);
  }
  expect(most).toBeLessThanOrEqual(maxParallel);
  expect(most).toBe(maxParallel);
}
