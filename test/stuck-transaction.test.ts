// One stuck transaction cannot stall every reservation. A transaction that holds a hot scope's counter row (a
// forgotten psql session, a runaway migration) makes the reserves on that scope answer 503 once the lock timeout
// fires, writing nothing, while reserves on every other scope go on being admitted; and the statement timeout the
// driver sets bounds any statement, whatever it waits on.
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../lib/app.ts';
import { loadConfig } from '../lib/config.ts';
import { DatabaseUnavailable } from '../lib/db.ts';
import { postgresDatabase } from '../lib/db/postgres.ts';
import { postgresUrl } from './support/databases.ts';
import { type Harness, type Reply, startHarness, tokens, uniqueId } from './support/harness.ts';

/** Holds `team`'s counter row in an open transaction until the returned function is called. */
async function holdCounterRow(url: string, team: string): Promise<{ release: () => Promise<void> }> {
  const blocker = postgres(url, { max: 1, onnotice: () => {} });
  const done = await new Promise<() => void>((resolve, reject) => {
    blocker
      .begin(async (tx) => {
        await tx`select 1 from spendgate.counters where kind = 'team' and id = ${team} and model = '' for update`;
        await new Promise<void>((finish) => resolve(finish));
      })
      .catch(reject);
  });
  return {
    async release() {
      done();
      await blocker.end({ timeout: 5 });
    },
  };
}

describe.skipIf(!postgresUrl)('a stuck transaction on a hot scope', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('postgres', { pool: 20 });
  });
  afterAll(() => h?.close());
  afterEach(() => h.expectAuditOk());

  const reserve = (scopes: Record<string, string>) => h.service('POST', '/v1/reservations', { scopes, estimate: { cost: '0.10' } });

  it('reserves on the hot scope answer 503 within the lock timeout while other scopes keep being admitted', async () => {
    const hot = uniqueId('team');
    expect((await h.admin('PUT', `/v1/limits/team/${hot}`, { max_budget: '100' })).status).toBe(200);
    expect((await reserve({ team: hot })).status).toBe(201);
    const before = await h.scope('team', hot);

    const blocker = await holdCounterRow(h.url!, hot);
    const started = Date.now();
    let hotAnswered = false;
    const hotReplies = Promise.all(Array.from({ length: 5 }, (_, i) => reserve({ team: hot, key: `${hot}-k${i}` }))).finally(() => {
      hotAnswered = true;
    });
    let others: Reply[] = [];
    try {
      // Bounded wait until all five are queued behind the row lock.
      for (const deadline = Date.now() + 10_000; ; ) {
        const [row] = await h.db.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock' and query like '%spendgate.reserve(%'`,
        );
        if (row!.n === 5) break;
        if (Date.now() > deadline) throw new Error(`only ${row!.n} reserves waited on the lock`);
      }
      // Meanwhile, 40 reserves on other scopes (some naming the same org as the hot ones) are admitted.
      const org = uniqueId('org');
      for (let batch = 0; batch < 4; batch++) {
        others = others.concat(await Promise.all(Array.from({ length: 10 }, (_, i) => reserve({ team: uniqueId('team'), org, key: `${org}-${batch}-${i}` }))));
      }
      expect(hotAnswered).toBe(false);
    } finally {
      const replies = await hotReplies;
      await blocker.release();
      // After the lock timeout (5 s), not later: the stuck transaction is still open when they answer.
      expect(Date.now() - started).toBeLessThan(15_000);
      for (const reply of replies) {
        expect(reply.status, JSON.stringify(reply.body)).toBe(503);
        expect(reply.body.error.type).toBe('unavailable');
        expect(reply.body.error.message).toContain('nothing was written');
      }
    }
    expect(others.map((r) => r.status)).toEqual(Array(40).fill(201));
    expect(await h.scope('team', hot)).toEqual(before);
    expect((await reserve({ team: hot })).status).toBe(201);
    console.log(`stuck transaction: 5 reserves on the locked scope answered 503 after the lock timeout; 40 reserves on other scopes admitted meanwhile`);
  });

  it('the statement timeout cancels any statement that runs too long, and the app answers 503 before the lock timeout', async () => {
    const db = postgresDatabase(h.url!, { max: 2, statementTimeoutMs: 500 });
    const hot = uniqueId('team');
    expect((await reserve({ team: hot })).status).toBe(201);
    const blocker = await holdCounterRow(h.url!, hot);
    try {
      const slow = await db.query('select pg_sleep(3)').then(() => null, (error: unknown) => error);
      expect(slow).toBeInstanceOf(DatabaseUnavailable);
      expect((slow as DatabaseUnavailable).cause).toMatchObject({ code: '57014' });

      const config = loadConfig({ SPENDGATE_ADMIN_TOKEN: tokens.admin, SPENDGATE_SERVICE_TOKEN: tokens.service }, { allowGeneratedTokens: false });
      const app = createApp({ db, config, logError: () => {} });
      const started = Date.now();
      const res = await app.request('/v1/reservations', {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.service}`, 'content-type': 'application/json' },
        body: JSON.stringify({ scopes: { team: hot }, estimate: { cost: '0.1' } }),
      });
      const elapsed = Date.now() - started;
      expect(res.status).toBe(503);
      expect((await res.json()).error.type).toBe('unavailable');
      // The 5 s lock timeout would answer too, but later: this was the 0.5 s statement timeout.
      expect(elapsed).toBeLessThan(4_500);
    } finally {
      await blocker.release();
      await db.close();
    }
  });
});
