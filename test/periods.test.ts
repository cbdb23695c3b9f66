import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, uniqueId } from './support/harness.ts';

/** An instant as the API writes it: microseconds, UTC. */
const iso = (ms: number) => new Date(ms).toISOString().replace(/Z$/, '000Z');

const HOUR = 3600;
const DAY = 86400;

/** Moves a harness's clock to `at`, never backwards (the tests of a file share one database and one clock). */
function moveTo(h: Harness, at: string): number {
  const target = Date.parse(at);
  const now = h.clock.now()?.getTime() ?? 0;
  if (target < now) throw new Error(`the clock may only move forward: ${at} is before ${new Date(now).toISOString()}`);
  h.clock.set(at);
  return target;
}

async function spendOn(h: Harness, scopes: Record<string, string>, cost: string, model?: string): Promise<void> {
  const held = await h.service('POST', '/v1/reservations', { scopes, estimate: { cost }, ...(model ? { model } : {}) });
  expect(held.status).toBe(201);
  const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost });
  expect(settled.status).toBe(200);
}

describe.each(backends)('budget periods (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());


  // Each starts after the previous test's clock, at an instant not aligned to any hour or day where it can show
  // that fixed periods count from the moment the duration was armed.
  it.each([
    ['1h', HOUR, '2026-03-10T12:00:00Z'],
    ['1d', DAY, '2026-03-11T08:15:30Z'],
    ['7d', 7 * DAY, '2026-03-14T09:00:07Z'],
  ] as const)('%s: spend resets at the end of the period counted from the anchor, not a second before', async (duration, seconds, start) => {
    const s = moveTo(h, start);
    const team = uniqueId('team');
    const put = await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', budget_duration: duration });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ budget_duration: duration, period_start: iso(s), resets_at: iso(s + seconds * 1000), spend: '0.000000', remaining: '1.000000' });

    await spendOn(h, { team }, '0.4');
    h.clock.advance(seconds - 1);
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.400000', period_start: iso(s), resets_at: iso(s + seconds * 1000), remaining: '0.600000' });
    const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.7' } });
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ type: 'budget_exceeded', spend: '0.400000', requested: '0.700000', resets_at: iso(s + seconds * 1000) });
    expect(refused.headers.get('retry-after')).toBe('1');

    h.clock.advance(1);
    expect(await h.scope('team', team)).toMatchObject({
      spend: '0.000000', reserved: '0.000000', period_start: iso(s + seconds * 1000), resets_at: iso(s + 2 * seconds * 1000), remaining: '1.000000',
    });
    const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.7' } });
    expect(held.status).toBe(201);
    expect(held.body.scopes[0]).toMatchObject({ spend: '0.000000', reserved: '0.700000', remaining: '0.300000', period_start: iso(s + seconds * 1000) });
    expect((await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '0.3' })).status).toBe(200);
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.300000', reserved: '0.000000', remaining: '0.700000' });

    // Idle through one and a half periods: the period is still counted from the anchor, not from the last touch.
    h.clock.advance(seconds + seconds / 2);
    expect(await h.scope('team', team)).toMatchObject({
      spend: '0.000000', period_start: iso(s + 2 * seconds * 1000), resets_at: iso(s + 3 * seconds * 1000), remaining: '1.000000',
    });
  });

  it('1mo: calendar months in UTC', async () => {
    moveTo(h, '2026-03-31T23:59:00Z');
    const team = uniqueId('team');
    const put = await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '5', budget_duration: '1mo' });
    expect(put.body).toMatchObject({ budget_duration: '1mo', period_start: '2026-03-01T00:00:00.000000Z', resets_at: '2026-04-01T00:00:00.000000Z' });
    await spendOn(h, { team }, '2.5');
    const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '3' } });
    expect(refused.status).toBe(429);
    expect(refused.body.error.resets_at).toBe('2026-04-01T00:00:00.000000Z');
    expect(refused.headers.get('retry-after')).toBe('60');

    h.clock.advance(120);
    expect(await h.scope('team', team)).toMatchObject({
      spend: '0.000000', period_start: '2026-04-01T00:00:00.000000Z', resets_at: '2026-05-01T00:00:00.000000Z', remaining: '5.000000',
    });
    await spendOn(h, { team }, '4');

    // April has 30 days: its last second is still April.
    moveTo(h, '2026-04-30T23:59:59Z');
    expect(await h.scope('team', team)).toMatchObject({ spend: '4.000000', period_start: '2026-04-01T00:00:00.000000Z', resets_at: '2026-05-01T00:00:00.000000Z' });
    h.clock.advance(1);
    expect(await h.scope('team', team)).toMatchObject({
      spend: '0.000000', period_start: '2026-05-01T00:00:00.000000Z', resets_at: '2026-06-01T00:00:00.000000Z', remaining: '5.000000',
    });
  });

  it('30d: thirty days from the anchor, not a calendar month', async () => {
    const s = moveTo(h, '2026-05-02T06:00:00Z');
    const team = uniqueId('team');
    const put = await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', budget_duration: '30d' });
    expect(put.body).toMatchObject({ period_start: '2026-05-02T06:00:00.000000Z', resets_at: '2026-06-01T06:00:00.000000Z' });
    await spendOn(h, { team }, '0.9');
    moveTo(h, '2026-06-01T05:59:59Z');
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.900000', period_start: '2026-05-02T06:00:00.000000Z' });
    const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.2' } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    h.clock.advance(1);
    expect(await h.scope('team', team)).toMatchObject({
      spend: '0.000000', period_start: '2026-06-01T06:00:00.000000Z', resets_at: '2026-07-01T06:00:00.000000Z', remaining: '1.000000',
    });
    await spendOn(h, { team }, '0.2');
    h.clock.advance(45 * DAY);
    expect(await h.scope('team', team)).toMatchObject({
      spend: '0.000000', period_start: iso(s + 60 * DAY * 1000), resets_at: '2026-07-31T06:00:00.000000Z',
    });
    expect(iso(s + 60 * DAY * 1000)).toBe('2026-07-01T06:00:00.000000Z');
  });

  it('a hold that straddles a boundary stays reserved, and its actual cost is charged to the period it settles in', async () => {
    const s = moveTo(h, '2026-08-01T10:00:00Z');
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '2', budget_duration: '1h' });
    await spendOn(h, { team }, '0.5');
    h.clock.advance(30 * 60);
    const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '1' }, ttl_seconds: 7200 });
    expect(held.status).toBe(201);
    const released = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.25' }, ttl_seconds: 7200 });
    expect(released.status).toBe(201);
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.500000', reserved: '1.250000', remaining: '0.250000', in_flight: 2 });

    h.clock.advance(45 * 60); // 11:15, the second period
    expect(await h.scope('team', team)).toMatchObject({
      spend: '0.000000', reserved: '1.250000', remaining: '0.750000', in_flight: 2,
      period_start: iso(s + HOUR * 1000), resets_at: iso(s + 2 * HOUR * 1000),
    });
    // The live holds still count against the new period.
    const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '1' } });
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ type: 'budget_exceeded', spend: '0.000000', reserved: '1.250000', requested: '1.000000' });

    const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '0.7' });
    expect(settled.status).toBe(200);
    expect(settled.body).toMatchObject({ status: 'settled', actual_cost: '0.700000', released_cost: '0.300000', late: false });
    const back = await h.service('POST', `/v1/reservations/${released.body.id}/release`);
    expect(back.body).toMatchObject({ status: 'released', released_cost: '0.250000' });
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.700000', reserved: '0.000000', remaining: '1.300000', in_flight: 0 });

    // In the third period the straddling charge is gone with its period.
    h.clock.advance(HOUR);
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.000000', reserved: '0.000000', period_start: iso(s + 2 * HOUR * 1000) });
  });

  it('a late settle after the boundary charges the period it arrives in, once', async () => {
    const s = moveTo(h, '2026-08-02T10:00:00Z');
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', budget_duration: '1h' });
    const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.6' }, ttl_seconds: 600 });
    expect(held.status).toBe(201);
    h.clock.advance(50 * 60);
    expect((await h.admin('POST', '/v1/sweep')).status).toBe(200);
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.000000', reserved: '0.000000', in_flight: 0 });
    h.clock.advance(20 * 60); // 11:10
    const late = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '0.25' });
    expect(late.body).toMatchObject({ status: 'settled', late: true, actual_cost: '0.250000', released_cost: '0.000000' });
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.250000', reserved: '0.000000', remaining: '0.750000', period_start: iso(s + HOUR * 1000) });
    const again = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '0.25' });
    expect(again.status).toBe(200);
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.250000' });
  });

  it('arming a duration on a scope with spend starts a clean period at once', async () => {
    const s = moveTo(h, '2026-08-03T10:00:00Z');
    const team = uniqueId('team');
    const key = uniqueId('key');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1' });
    await spendOn(h, { team, key }, '0.9');
    expect(await h.scope('key', key)).toMatchObject({ spend: '0.900000', period_start: null, resets_at: null });
    const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.2' } });
    expect(refused.status).toBe(429);
    expect(refused.body.error.resets_at).toBeNull();
    expect(refused.headers.get('retry-after')).toBeNull();

    h.clock.advance(60);
    const armed = await h.admin('PUT', `/v1/limits/team/${team}`, { budget_duration: '7d' });
    expect(armed.body).toMatchObject({
      max_budget: '1.000000', budget_duration: '7d', spend: '0.000000', remaining: '1.000000',
      period_start: iso(s + 60_000), resets_at: iso(s + 60_000 + 7 * DAY * 1000),
    });
    const keyArmed = await h.admin('PUT', `/v1/limits/key/${key}`, { budget_duration: '1d' });
    expect(keyArmed.body).toMatchObject({ spend: '0.000000', max_budget: null, remaining: null, period_start: iso(s + 60_000), resets_at: iso(s + 60_000 + DAY * 1000) });

    const held = await h.service('POST', '/v1/reservations', { scopes: { team, key }, estimate: { cost: '0.95' } });
    expect(held.status).toBe(201);
    await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '0.95' });
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.950000', remaining: '0.050000', period_start: iso(s + 60_000) });
    expect(await h.scope('key', key)).toMatchObject({ spend: '0.950000' });
  });

  it('changing a duration keeps the current period start', async () => {
    const t = moveTo(h, '2026-08-04T10:00:00Z');
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '10', budget_duration: '1d' });
    h.clock.advance(30 * 60);
    await spendOn(h, { team }, '1');

    const shorter = await h.admin('PUT', `/v1/limits/team/${team}`, { budget_duration: '1h' });
    expect(shorter.body).toMatchObject({ budget_duration: '1h', spend: '1.000000', period_start: iso(t), resets_at: iso(t + HOUR * 1000) });
    const longer = await h.admin('PUT', `/v1/limits/team/${team}`, { budget_duration: '7d' });
    expect(longer.body).toMatchObject({ budget_duration: '7d', spend: '1.000000', period_start: iso(t), resets_at: iso(t + 7 * DAY * 1000) });

    // Past where the old 1h and 1d periods would have ended: the spend is still this period's.
    h.clock.advance(DAY + HOUR);
    expect(await h.scope('team', team)).toMatchObject({ spend: '1.000000', remaining: '9.000000', period_start: iso(t) });
    const month = await h.admin('PUT', `/v1/limits/team/${team}`, { budget_duration: '30d' });
    expect(month.body).toMatchObject({ spend: '1.000000', period_start: iso(t), resets_at: iso(t + 30 * DAY * 1000) });

    // A later period of a scope: its own start is kept, not the first anchor.
    const u = (h.clock.now() as Date).getTime();
    const other = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${other}`, { budget_duration: '1h' });
    h.clock.advance(2.5 * HOUR);
    await spendOn(h, { team: other }, '0.2');
    const changed = await h.admin('PUT', `/v1/limits/team/${other}`, { budget_duration: '1d' });
    expect(changed.body).toMatchObject({ spend: '0.200000', period_start: iso(u + 2 * HOUR * 1000), resets_at: iso(u + 2 * HOUR * 1000 + DAY * 1000) });
  });

  it('a model limit without its own duration follows the scope\'s', async () => {
    const t = moveTo(h, '2026-08-06T10:00:00Z');
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '100', budget_duration: '1h', models: { 'gpt-4o': { max_budget: '1' } } });
    let read = await h.scope('team', team);
    expect(read.models['gpt-4o']).toMatchObject({ budget_duration: '1h', period_start: iso(t), resets_at: iso(t + HOUR * 1000), remaining: '1.000000' });

    h.clock.advance(10 * 60);
    await spendOn(h, { team }, '0.6', 'gpt-4o');
    read = await h.scope('team', team);
    expect(read).toMatchObject({ spend: '0.600000' });
    expect(read.models['gpt-4o']).toMatchObject({ spend: '0.600000', remaining: '0.400000' });
    const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, model: 'gpt-4o', estimate: { cost: '0.5' } });
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ scope: { kind: 'team', id: team, model: 'gpt-4o' }, resets_at: iso(t + HOUR * 1000) });
    expect(refused.headers.get('retry-after')).toBe(String(50 * 60));

    h.clock.advance(50 * 60);
    read = await h.scope('team', team);
    expect(read).toMatchObject({ spend: '0.000000', period_start: iso(t + HOUR * 1000) });
    expect(read.models['gpt-4o']).toMatchObject({ spend: '0.000000', period_start: iso(t + HOUR * 1000), resets_at: iso(t + 2 * HOUR * 1000), remaining: '1.000000' });
    const held = await h.service('POST', '/v1/reservations', { scopes: { team }, model: 'gpt-4o', estimate: { cost: '0.5' } });
    expect(held.status).toBe(201);
    expect(held.body.scopes[0].model_limit).toMatchObject({ model: 'gpt-4o', spend: '0.000000', reserved: '0.500000', period_start: iso(t + HOUR * 1000) });
    await h.service('POST', `/v1/reservations/${held.body.id}/release`);

    // Changing the scope's duration changes the model limit's with it.
    await h.admin('PUT', `/v1/limits/team/${team}`, { budget_duration: '7d' });
    read = await h.scope('team', team);
    expect(read.models['gpt-4o']).toMatchObject({ budget_duration: '7d', period_start: iso(t + HOUR * 1000), resets_at: iso(t + HOUR * 1000 + 7 * DAY * 1000) });
  });

  // Deployed Postgres servers often run in a local time zone (initdb takes the machine's). Periods are UTC whatever
  // the session's TimeZone: 24 hours stay 24 hours across a DST change, and a month ends at midnight UTC.
  describe('on a database session whose TimeZone has daylight saving time', () => {
    let z: Harness;
    beforeAll(async () => {
      z = await startHarness(backend, { pool: 1, start: '2026-10-31T12:00:00Z' });
      if (z.url) {
        await z.db.query("do $$ begin execute format('alter database %I set timezone to %L', current_database(), 'America/New_York'); end $$");
      }
      await z.db.query("set timezone to 'America/New_York'");
      const [row] = await z.db.query<{ tz: string }>('select current_setting(\'TimeZone\') as tz');
      expect(row?.tz).toBe('America/New_York');
    });
    afterAll(() => z.close());
    afterEach(() => z.expectAuditOk());

    it('1d is 24 hours across the end of DST', async () => {
      const team = uniqueId('team');
      const put = await z.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', budget_duration: '1d' });
      expect(put.body).toMatchObject({ period_start: '2026-10-31T12:00:00.000000Z', resets_at: '2026-11-01T12:00:00.000000Z' });
      await spendOn(z, { team }, '0.8');
      z.clock.advance(DAY - 1);
      const refused = await z.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.5' } });
      expect(refused.status).toBe(429);
      expect(refused.body.error.resets_at).toBe('2026-11-01T12:00:00.000000Z');
      expect(refused.headers.get('retry-after')).toBe('1');
      z.clock.advance(1);
      const read = await z.service('GET', `/v1/limits/team/${team}`);
      expect(read.body).toMatchObject({ spend: '0.000000', period_start: '2026-11-01T12:00:00.000000Z', resets_at: '2026-11-02T12:00:00.000000Z' });
    });

    it('1mo ends at midnight UTC on the first of the next month', async () => {
      moveTo(z, '2026-11-15T12:00:00Z');
      const team = uniqueId('team');
      const put = await z.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', budget_duration: '1mo' });
      expect(put.body).toMatchObject({ period_start: '2026-11-01T00:00:00.000000Z', resets_at: '2026-12-01T00:00:00.000000Z' });
      await spendOn(z, { team }, '0.8');
      moveTo(z, '2026-11-30T23:59:59Z');
      const read = await z.service('GET', `/v1/limits/team/${team}`);
      expect(read.body).toMatchObject({ spend: '0.800000', period_start: '2026-11-01T00:00:00.000000Z', resets_at: '2026-12-01T00:00:00.000000Z' });
      z.clock.advance(1);
      const next = await z.service('GET', `/v1/limits/team/${team}`);
      expect(next.body).toMatchObject({ spend: '0.000000', period_start: '2026-12-01T00:00:00.000000Z', resets_at: '2027-01-01T00:00:00.000000Z' });
    });
  });
});
