// The database goes away under a running server, and comes back. A cluster of the test's own (never the shared
// one) is stopped with `pg_ctl stop -m immediate` while clients keep reserving and settling: every request made
// during the outage must get 503 `unavailable` at once (no hanging), the server must serve again by itself once the
// database is back, and nothing may be half-written: every hold a client was told about is in the ledger, every
// hold in the ledger is one a client was told about (the clients retry with the same idempotency key), each charged
// once, and the audit balances.
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokens } from './support/harness.ts';
import { type HttpReply, send, sleep } from './support/load.ts';
import { micros, money } from './support/money.ts';
import { type ServerProcess, startedServers, startServer, stopAllServers } from './support/spendgate-processes.ts';
import { createThrowawayPostgres, postgresBin, type ThrowawayPostgres } from './support/throwaway-postgres.ts';

type Phase = 'before' | 'stopping' | 'outage' | 'restarting' | 'after';

interface Attempt {
  phase: Phase;
  what: 'reserve' | 'settle';
  key: string;
  reply: HttpReply;
}

describe.skipIf(!postgresBin)('a database outage under load (own cluster)', () => {
  let pg: ThrowawayPostgres;
  let server: ServerProcess;

  beforeAll(async () => {
    pg = await createThrowawayPostgres();
    server = await startServer({ DATABASE_URL: pg.url, SPENDGATE_STATEMENT_TIMEOUT_MS: '3000', SPENDGATE_POOL_SIZE: '8' });
  }, 180_000);

  afterAll(async () => {
    await stopAllServers();
    await pg?.destroy();
  }, 60_000);

  it('answers 503 unavailable at once while the database is down, resumes by itself, and loses or doubles nothing', async () => {
    const admin = (method: string, path: string, body?: unknown) => send(server.base, tokens.admin, method, path, body);
    const team = 'outage-team';
    expect((await admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1000' })).status).toBe(200);

    let phase: Phase = 'before';
    let stopLoad = false;
    const attempts: Attempt[] = [];
    /** Holds the clients were told about, and the cost each settled with. */
    const confirmed = new Map<string, { id: string; cost: string }>();
    const workers = 16;
    const giveUpAt = () => Date.now() > hardDeadline;
    let hardDeadline = Date.now() + 120_000;

    /** Sends until the answer is final: a 503 or no answer is retried the same way (same key, same body). */
    const untilFinal = async (what: Attempt['what'], key: string, call: () => Promise<HttpReply>): Promise<HttpReply> => {
      for (;;) {
        const started: Phase = phase;
        const reply = await call();
        attempts.push({ phase: started, what, key, reply });
        if (reply.status !== 503 && reply.status !== 0) return reply;
        if (giveUpAt()) throw new Error(`${what} never got through: ${JSON.stringify(reply.body)}`);
        await sleep(100);
      }
    };

    const worker = async (w: number) => {
      for (let n = 0; !stopLoad; n++) {
        const key = `outage-w${w}-${n}`;
        const body = { scopes: { team, key: `outage-k${w}` }, estimate: { cost: '0.02' }, idempotency_key: key };
        const held = await untilFinal('reserve', key, () => send(server.base, tokens.service, 'POST', '/v1/reservations', body, 20_000));
        expect([200, 201], JSON.stringify(held.body)).toContain(held.status);
        const cost = `0.0${(n % 9) + 1}`;
        const settled = await untilFinal('settle', key, () =>
          send(server.base, tokens.service, 'POST', `/v1/reservations/${held.body.id}/settle`, { cost }, 20_000),
        );
        expect(settled.status, JSON.stringify(settled.body)).toBe(200);
        confirmed.set(key, { id: held.body.id, cost });
      }
    };

    const load = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
    await sleep(2_000);
    phase = 'stopping';
    const outageStart = Date.now();
    await pg.stopImmediately();
    phase = 'outage';
    await sleep(3_000);
    phase = 'restarting';
    await pg.start();
    const outageMs = Date.now() - outageStart;
    phase = 'after';
    const restartedAt = Date.now();
    hardDeadline = restartedAt + 60_000;
    // Service resumes by itself: the first request that gets through after the restart, waited for (bounded).
    while (!attempts.some((a) => a.phase === 'after' && a.reply.status !== 503 && a.reply.status !== 0)) {
      if (Date.now() - restartedAt > 30_000) throw new Error('the server did not serve again within 30 s of the restart');
      await sleep(50);
    }
    const recoveryMs = Date.now() - restartedAt;
    await sleep(1_500);
    stopLoad = true;
    await load;

    // During the outage: every request got 503 unavailable, with Retry-After, and quickly (the server never hung).
    const during = attempts.filter((a) => a.phase === 'outage');
    expect(during.length).toBeGreaterThan(50);
    for (const { reply } of during) {
      expect(reply.status, JSON.stringify(reply.body)).toBe(503);
      expect(reply.body.error.type).toBe('unavailable');
      expect(reply.headers?.get('retry-after')).toBe('1');
      expect(reply.ms).toBeLessThan(10_000);
    }
    const slowest = Math.max(...during.map((a) => a.reply.ms));
    // The server process itself never went down.
    expect(attempts.filter((a) => a.reply.status === 0)).toEqual([]);
    expect(attempts.some((a) => a.phase === 'after' && (a.reply.status === 200 || a.reply.status === 201))).toBe(true);

    // Nothing half-written, nothing lost, nothing doubled: the ledger holds exactly the confirmed holds, each
    // settled once at the cost its client sent, and every counter equals the ledger.
    const db = postgres(pg.url, { max: 1, onnotice: () => {} });
    try {
      const rows = await db<{ key: string; id: string; status: string; actual_cost: string; scopes: number }[]>`
        select r.idempotency_key as key, r.id::text as id, r.status, spendgate.money(r.actual_cost) as actual_cost,
               (select count(*)::int from spendgate.reservation_counters rc where rc.reservation_id = r.id) as scopes
          from spendgate.reservations r`;
      expect(rows.length).toBe(confirmed.size);
      let total = 0n;
      for (const row of rows) {
        const client = confirmed.get(row.key);
        expect(client, `ledger reservation ${row.key} that no client was told about`).toBeDefined();
        expect(row).toEqual({ key: row.key, id: client!.id, status: 'settled', actual_cost: money(micros(client!.cost)), scopes: 2 });
        total += micros(client!.cost);
      }
      const usage = await send(server.base, tokens.service, 'GET', `/v1/limits/team/${team}`);
      expect(usage.body).toMatchObject({ spend: money(total), reserved: '0.000000', in_flight: 0 });
    } finally {
      await db.end();
    }
    const audit = await admin('GET', '/v1/audit');
    expect(audit.body).toMatchObject({ ok: true, mismatches: [] });
    // What the servers printed, crashes and failures included, holds no token.
    for (const server of startedServers()) for (const token of Object.values(tokens)) expect(server.output()).not.toContain(token);

    // A reserve whose retry was answered by replay had committed although its first attempt got no answer: that
    // attempt's 503 must not have claimed that nothing was written.
    const replayed = attempts.filter((a) => a.what === 'reserve' && a.reply.headers?.get('idempotent-replayed') === 'true');
    for (const replay of replayed) {
      const failed = attempts.filter((a) => a.key === replay.key && a.what === 'reserve' && a.reply.status === 503);
      expect(failed.length).toBeGreaterThan(0);
      expect(failed.some((a) => String(a.reply.body.error.message).includes('may have been applied')), JSON.stringify(failed)).toBe(true);
    }
    const replayedAfterOutage = replayed.length;
    console.log(
      `database outage: ${Math.round(outageMs / 100) / 10} s down (stop -m immediate to restarted), ${during.length} requests during it, ` +
        `all 503 unavailable, slowest ${slowest} ms; served again ${recoveryMs} ms after the restart; ${confirmed.size} holds settled, ` +
        `${replayedAfterOutage} reserve retries answered by replay; mismatches: 0`,
    );
  }, 180_000);
});
