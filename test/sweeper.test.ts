// The sweeper: many passes at once share the work (each batch takes its rows FOR UPDATE SKIP LOCKED), never wait
// for one another or for a call holding a reservation, and run beside reservations without deadlock; `npm run
// sweep` is one such pass with a one-line summary and an exit code.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseClock } from '../lib/clock.ts';
import { createLedger } from '../lib/ledger.ts';
import { sweepDue } from '../lib/sweep.ts';
import { postgresUrl } from './support/databases.ts';
import { type Harness, startHarness, uniqueId } from './support/harness.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);

describe.skipIf(!postgresUrl)('sweepers on real Postgres', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('postgres', { start: null, pool: 20 });
  });
  afterAll(() => h.close());

  /** `count` holds that expired an hour ago, on 25 keys and 5 teams (so that batches share counters). Made 250 to a
   * statement, so that no statement nears the pool's statement timeout on a loaded machine. */
  async function staleHolds(count: number): Promise<string> {
    const prefix = uniqueId('stale');
    let held = 0;
    for (let from = 1; from <= count; from += 250) {
      const [row] = await h.db.query<{ held: number }>(
        `select count(*) filter (where r ->> 'status' = 'held')::int as held from (
           select spendgate.reserve(jsonb_build_object(
             'scopes', jsonb_build_array(jsonb_build_object('kind', 'key', 'id', $1 || '-key-' || (i % 25)),
                                         jsonb_build_object('kind', 'team', 'id', $1 || '-team-' || (i % 5))),
             'model', null, 'request_estimate', null, 'caller_estimate', jsonb_build_object('cost', '0.01'),
             'ttl_seconds', 60, 'idempotency_key', null, 'request_hash', md5(i::text), 'fallback_hold', '1.00'),
             now() - interval '1 hour') as r
           from generate_series($2::integer, $3::integer) i) made`,
        [prefix, from, Math.min(from + 249, count)],
      );
      held += row!.held;
    }
    expect(held).toBe(count);
    return prefix;
  }

  const statuses = async (prefix: string) =>
    h.db.query<{ status: string; n: number }>(
      `select r.status, count(distinct r.id)::int as n from spendgate.reservations r
         join spendgate.reservation_counters rc on rc.reservation_id = r.id
        where rc.kind = 'key' and rc.id like $1 || '-key-%' group by r.status order by r.status`,
      [prefix],
    );

  const ledger = () => createLedger(h.db, databaseClock);

  it('eight passes at once expire 2000 due holds, each exactly once', async () => {
    const prefix = await staleHolds(2000);
    const passes = await Promise.all(Array.from({ length: 8 }, () => sweepDue(ledger(), 100)));
    expect(passes.every((p) => p.complete)).toBe(true);
    expect(passes.reduce((sum, p) => sum + p.expired, 0)).toBe(2000);
    expect(await statuses(prefix)).toEqual([{ status: 'expired', n: 2000 }]);
    await h.expectAuditOk();
  });

  it('a pass skips the holds another transaction has locked instead of waiting for them', async () => {
    const prefix = await staleHolds(50);
    const other = postgres(h.url!, { max: 1, onnotice: () => {} });
    try {
      const locker = await other.reserve();
      try {
        await locker`begin`;
        // As a settle in progress would hold them.
        await locker.unsafe(
          `select r.id from spendgate.reservations r join spendgate.reservation_counters rc on rc.reservation_id = r.id
            where rc.kind = 'key' and rc.id like $1 || '-key-%' and r.status = 'held' order by r.id limit 10 for update of r`,
          [prefix],
        );
        // Waiting would end in the 5 s lock_timeout and an error; skipping ends with the other 40.
        expect(await sweepDue(ledger())).toEqual({ expired: 40, complete: true });
        await locker`commit`;
      } finally {
        locker.release();
      }
      expect(await sweepDue(ledger())).toEqual({ expired: 10, complete: true });
      expect(await statuses(prefix)).toEqual([{ status: 'expired', n: 50 }]);
    } finally {
      await other.end();
    }
    await h.expectAuditOk();
  });

  it('sweepers and reservations on the same scopes at once: no deadlock, no lock timeout, counters equal the ledger', async () => {
    const prefix = await staleHolds(600);
    let reserving = true;
    const sweeper = async () => {
      let expired = 0;
      while (reserving) expired += (await sweepDue(ledger(), 25)).expired;
      return expired + (await sweepDue(ledger(), 25)).expired;
    };
    const sweepers = Array.from({ length: 4 }, sweeper);
    const statusesSeen: number[] = [];
    try {
      for (let round = 0; round < 10; round++) {
        const replies = await Promise.all(Array.from({ length: 20 }, (_, i) =>
          h.service('POST', '/v1/reservations', {
            scopes: { key: `${prefix}-key-${(round * 20 + i) % 25}`, team: `${prefix}-team-${i % 5}` },
            estimate: { cost: '0.01' },
          })));
        statusesSeen.push(...replies.map((r) => r.status));
      }
    } finally {
      reserving = false;
    }
    const swept = await Promise.all(sweepers);
    expect(statusesSeen).toEqual(Array(200).fill(201));
    // Reserves expire the stale holds of the scopes they touch themselves; the sweepers took the rest.
    const rows = await statuses(prefix);
    expect(rows).toEqual([{ status: 'expired', n: 600 }, { status: 'held', n: 200 }]);
    expect(swept.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(600);
    await h.expectAuditOk();
  });

  describe('npm run sweep', () => {
    const tsx = join(root, 'node_modules/.bin/tsx');
    const sweep = (env: Record<string, string>) =>
      run(tsx, ['functions/sweep.ts'], { cwd: root, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } }).then(
        (done) => ({ code: 0, stdout: done.stdout, stderr: done.stderr }),
        (failed: { code: number; stdout: string; stderr: string }) => ({ code: failed.code, stdout: failed.stdout, stderr: failed.stderr }),
      );

    it('is the script package.json names', () => {
      expect(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts.sweep).toBe('tsx functions/sweep.ts');
    });

    it('three at once: each exits 0 with one line, and together they expire every due hold once', async () => {
      const prefix = await staleHolds(1500);
      const runs = await Promise.all(Array.from({ length: 3 }, () => sweep({ DATABASE_URL: h.url! })));
      let total = 0;
      for (const result of runs) {
        expect(result.code).toBe(0);
        expect(result.stderr).toBe('');
        const lines = result.stdout.trim().split('\n');
        expect(lines).toHaveLength(1);
        const match = /^spendgate sweep: expired (\d+) holds? past their expiry in Postgres at 127\.0\.0\.1:\d+$/.exec(lines[0]!);
        expect(match, lines[0]).not.toBeNull();
        total += Number(match![1]);
      }
      expect(total).toBe(1500);
      expect(await statuses(prefix)).toEqual([{ status: 'expired', n: 1500 }]);
    });

    it('exits 1 with one line when it cannot sweep', async () => {
      const missing = new URL(h.url!);
      missing.pathname = `/${uniqueId('no_such_database').replaceAll('-', '_')}`;
      const result = await sweep({ DATABASE_URL: missing.toString() });
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(/^spendgate sweep: failed: .*does not exist/);
    });
  });
});
