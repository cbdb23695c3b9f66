// Budget windows (several budgets on one scope, each with its own period), period layouts (rolling, calendar,
// billing anchor) for windows and the main budget, changes of duration, and 'fit' admission. Over HTTP with the
// manual clock; the tests of a file share one database and one clock, which only moves forward.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, uniqueId } from './support/harness.ts';

/** An instant as the API writes it: microseconds, UTC. */
const iso = (at: number | string) => new Date(at).toISOString().replace(/Z$/, '000Z');

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** Moves the clock to `at`, never backwards. */
function moveTo(h: Harness, at: string): number {
  const target = Date.parse(at);
  if (target < h.clock.now()!.getTime()) throw new Error(`the clock may only move forward: ${at}`);
  h.clock.set(at);
  return target;
}

describe.each(backends)('budget windows (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend, { start: '2026-01-05T09:30:00Z' });
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  const reserve = (scopes: Record<string, string>, cost: string) =>
    h.service('POST', '/v1/reservations', { scopes, estimate: { cost } });

  /** Reserve and settle `cost` on `scopes`: that much spend. */
  async function spend(scopes: Record<string, string>, cost: string): Promise<void> {
    const held = await reserve(scopes, cost);
    expect(held.status).toBe(201);
    expect((await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost })).status).toBe(200);
  }

  it('a day window and a month window are enforced together: the tighter one refuses, naming its window', async () => {
    const t0 = moveTo(h, '2026-01-05T09:30:00Z');
    const team = uniqueId('team');
    const put = await h.admin('PUT', `/v1/limits/team/${team}`, {
      windows: [{ max_budget: '1', budget_duration: '1d' }, { max_budget: '2.5', budget_duration: '1mo' }],
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ max_budget: null, budget_duration: null });
    // 1d is rolling from now; 1mo is the calendar month unless told otherwise.
    expect(put.body.windows).toHaveLength(2);
    expect(put.body.windows[0]).toMatchObject({
      max_budget: '1.000000', budget_duration: '1d', budget_align: 'rolling', period_start: iso(t0), resets_at: iso(t0 + DAY),
      spend: '0.000000', remaining: '1.000000',
    });
    expect(put.body.windows[1]).toMatchObject({
      max_budget: '2.500000', budget_duration: '1mo', budget_align: 'calendar',
      period_start: '2026-01-01T00:00:00.000000Z', resets_at: '2026-02-01T00:00:00.000000Z', remaining: '2.500000',
    });

    await spend({ team }, '0.8');
    h.clock.advance(3600);
    const byDay = await reserve({ team }, '0.3');
    expect(byDay.status).toBe(429);
    expect(byDay.body.error).toMatchObject({
      type: 'budget_exceeded', scope: { kind: 'team', id: team, window: 1 }, limit_type: 'max_budget',
      max_budget: '1.000000', spend: '0.800000', requested: '0.300000', resets_at: iso(t0 + DAY),
    });
    expect(byDay.headers.get('retry-after')).toBe(String(23 * 3600));
    await spend({ team }, '0.2'); // exactly fills the day

    // The next day: the day window is fresh, the month window still holds 1.0.
    moveTo(h, iso(t0 + DAY));
    let read = await h.scope('team', team);
    expect(read.windows[0]).toMatchObject({ spend: '0.000000', period_start: iso(t0 + DAY), resets_at: iso(t0 + 2 * DAY) });
    expect(read.windows[1]).toMatchObject({ spend: '1.000000', remaining: '1.500000' });
    await spend({ team }, '1');

    // The day after: 0.5 leaves the day window room for 0.1, but the month (2.5 of 2.5) refuses it.
    moveTo(h, iso(t0 + 2 * DAY));
    await spend({ team }, '0.5');
    const byMonth = await reserve({ team }, '0.1');
    expect(byMonth.status).toBe(429);
    expect(byMonth.body.error).toMatchObject({
      scope: { kind: 'team', id: team, window: 2 }, max_budget: '2.500000', spend: '2.500000', resets_at: '2026-02-01T00:00:00.000000Z',
    });
    // From 2026-01-07T09:30:00Z to 2026-02-01T00:00:00Z: 24 days and 14.5 hours.
    expect(byMonth.headers.get('retry-after')).toBe(String(24 * 86400 + 14.5 * 3600));
    read = await h.scope('team', team);
    expect(read.windows[0]).toMatchObject({ spend: '0.500000', remaining: '0.500000' });
    expect(read.windows[1]).toMatchObject({ spend: '2.500000', remaining: '0.000000' });
    // The scope's own counter has no period: it counts everything.
    expect(read).toMatchObject({ spend: '2.500000', remaining: null });
  });

  it('align: calendar lays windows on UTC hours, days, ISO weeks (from Monday) and months', async () => {
    moveTo(h, '2026-01-07T15:20:00Z'); // a Wednesday
    const team = uniqueId('team');
    const put = await h.admin('PUT', `/v1/limits/team/${team}`, {
      windows: [
        { max_budget: '5', budget_duration: '1h', align: 'calendar' },
        { max_budget: '1', budget_duration: '1d', align: 'calendar' },
        { max_budget: '3', budget_duration: '7d', align: 'calendar' },
        { max_budget: '10', budget_duration: '1mo', align: 'calendar' },
      ],
    });
    expect(put.status).toBe(200);
    expect(put.body.windows.map((w: { budget_align: string; period_start: string; resets_at: string }) =>
      [w.budget_align, w.period_start, w.resets_at])).toEqual([
      ['calendar', '2026-01-07T15:00:00.000000Z', '2026-01-07T16:00:00.000000Z'],
      ['calendar', '2026-01-07T00:00:00.000000Z', '2026-01-08T00:00:00.000000Z'],
      ['calendar', '2026-01-05T00:00:00.000000Z', '2026-01-12T00:00:00.000000Z'],
      ['calendar', '2026-01-01T00:00:00.000000Z', '2026-02-01T00:00:00.000000Z'],
    ]);

    // The day ends at UTC midnight, not 24 hours after the window was set.
    moveTo(h, '2026-01-07T23:59:59Z');
    await spend({ team }, '0.9');
    const late = await reserve({ team }, '0.2');
    expect(late.status).toBe(429);
    expect(late.body.error.scope).toEqual({ kind: 'team', id: team, window: 2 });
    expect(late.headers.get('retry-after')).toBe('1');
    moveTo(h, '2026-01-08T00:00:00Z');
    await spend({ team }, '0.2');
    let read = await h.scope('team', team);
    expect(read.windows[1]).toMatchObject({ spend: '0.200000', period_start: '2026-01-08T00:00:00.000000Z' });
    expect(read.windows[2]).toMatchObject({ spend: '1.100000', period_start: '2026-01-05T00:00:00.000000Z' });

    // The week: 1.1 + 1.0 + 0.9 = 3.0 by Saturday; on Sunday's last second it refuses, on Monday it is new.
    moveTo(h, '2026-01-09T12:00:00Z');
    await spend({ team }, '1');
    moveTo(h, '2026-01-10T12:00:00Z');
    await spend({ team }, '0.9');
    moveTo(h, '2026-01-11T23:59:59Z');
    const sunday = await reserve({ team }, '0.1');
    expect(sunday.status).toBe(429);
    expect(sunday.body.error).toMatchObject({ scope: { kind: 'team', id: team, window: 3 }, resets_at: '2026-01-12T00:00:00.000000Z' });
    expect(sunday.headers.get('retry-after')).toBe('1');
    moveTo(h, '2026-01-12T00:00:00Z');
    const monday = await reserve({ team }, '0.1');
    expect(monday.status).toBe(201);
    expect(monday.body.scopes[0].windows[2]).toMatchObject({
      spend: '0.000000', reserved: '0.100000', period_start: '2026-01-12T00:00:00.000000Z', resets_at: '2026-01-19T00:00:00.000000Z',
    });
    await h.service('POST', `/v1/reservations/${monday.body.id}/release`);
    read = await h.scope('team', team);
    expect(read.windows[3]).toMatchObject({ spend: '3.000000', period_start: '2026-01-01T00:00:00.000000Z' });
  });

  it('anchor: monthly periods from the anchor; an anchor on the 31st gives the last day of shorter months', async () => {
    moveTo(h, '2026-01-20T08:00:00Z');
    const fifteenth = uniqueId('team');
    const a = await h.admin('PUT', `/v1/limits/team/${fifteenth}`, {
      windows: [{ max_budget: '1', budget_duration: '1mo', anchor: '2026-01-15T00:00:00Z' }],
    });
    expect(a.status).toBe(200);
    expect(a.body.windows[0]).toMatchObject({
      budget_align: 'anchor', budget_anchor: '2026-01-15T00:00:00.000000Z',
      period_start: '2026-01-15T00:00:00.000000Z', resets_at: '2026-02-15T00:00:00.000000Z',
    });
    await spend({ team: fifteenth }, '0.7');

    moveTo(h, '2026-02-10T00:00:00Z');
    const last = uniqueId('team');
    const b = await h.admin('PUT', `/v1/limits/team/${last}`, {
      windows: [{ max_budget: '1', budget_duration: '1mo', anchor: '2026-01-31T00:00:00Z' }],
    });
    expect(b.body.windows[0]).toMatchObject({
      budget_align: 'anchor', period_start: '2026-01-31T00:00:00.000000Z', resets_at: '2026-02-28T00:00:00.000000Z',
    });
    await spend({ team: last }, '0.6');

    moveTo(h, '2026-02-14T23:59:59Z');
    const before15 = await reserve({ team: fifteenth }, '0.4');
    expect(before15.status).toBe(429);
    expect(before15.headers.get('retry-after')).toBe('1');
    moveTo(h, '2026-02-15T00:00:00Z');
    expect((await h.scope('team', fifteenth)).windows[0]).toMatchObject({
      spend: '0.000000', period_start: '2026-02-15T00:00:00.000000Z', resets_at: '2026-03-15T00:00:00.000000Z',
    });

    moveTo(h, '2026-02-27T23:59:59Z');
    const beforeEnd = await reserve({ team: last }, '0.5');
    expect(beforeEnd.status).toBe(429);
    expect(beforeEnd.body.error.resets_at).toBe('2026-02-28T00:00:00.000000Z');
    moveTo(h, '2026-02-28T00:00:00Z');
    expect((await h.scope('team', last)).windows[0]).toMatchObject({
      spend: '0.000000', period_start: '2026-02-28T00:00:00.000000Z', resets_at: '2026-03-31T00:00:00.000000Z',
    });
    await spend({ team: last }, '0.3');
    moveTo(h, '2026-03-30T23:59:59Z');
    expect((await h.scope('team', last)).windows[0]).toMatchObject({ spend: '0.300000', period_start: '2026-02-28T00:00:00.000000Z' });
    moveTo(h, '2026-03-31T00:00:00Z');
    expect((await h.scope('team', last)).windows[0]).toMatchObject({
      spend: '0.000000', period_start: '2026-03-31T00:00:00.000000Z', resets_at: '2026-04-30T00:00:00.000000Z',
    });
  });

  it('the main budget takes budget_align and budget_anchor the same way', async () => {
    const now = moveTo(h, '2026-04-01T06:00:00Z'); // a Wednesday
    const cases = [
      [{ budget_duration: '1mo', budget_anchor: '2026-01-15T00:00:00Z' },
       { budget_align: 'anchor', budget_anchor: '2026-01-15T00:00:00.000000Z', period_start: '2026-03-15T00:00:00.000000Z', resets_at: '2026-04-15T00:00:00.000000Z' }],
      [{ budget_duration: '7d', budget_align: 'calendar' },
       { budget_align: 'calendar', budget_anchor: null, period_start: '2026-03-30T00:00:00.000000Z', resets_at: '2026-04-06T00:00:00.000000Z' }],
      [{ budget_duration: '1d', budget_align: 'calendar' },
       { budget_align: 'calendar', period_start: '2026-04-01T00:00:00.000000Z', resets_at: '2026-04-02T00:00:00.000000Z' }],
      [{ budget_duration: '1mo', budget_align: 'rolling' },
       { budget_align: 'rolling', period_start: iso(now), resets_at: '2026-05-01T06:00:00.000000Z' }],
      [{ budget_duration: '1h', budget_align: 'calendar' },
       { budget_align: 'calendar', period_start: '2026-04-01T06:00:00.000000Z', resets_at: '2026-04-01T07:00:00.000000Z' }],
    ] as const;
    for (const [body, expected] of cases) {
      const team = uniqueId('team');
      const put = await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', ...body });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject(expected);
    }
  });

  it('changing a duration or layout recomputes resets_at to the moment the period really rolls', async () => {
    const t = moveTo(h, '2026-04-02T10:00:00Z'); // a Thursday
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '10', budget_duration: '1d' });
    h.clock.advance(3 * 3600);
    await spend({ team }, '1');

    const week = await h.admin('PUT', `/v1/limits/team/${team}`, { budget_duration: '7d' });
    expect(week.body).toMatchObject({ spend: '1.000000', period_start: iso(t), resets_at: iso(t + 7 * DAY) });

    // Onto calendar weeks: this week (from Monday 03-30) began before the current period, so the spend stays
    // until the next Monday, which is when it resets.
    const calendar = await h.admin('PUT', `/v1/limits/team/${team}`, { budget_align: 'calendar' });
    expect(calendar.status).toBe(200);
    expect(calendar.body).toMatchObject({ budget_align: 'calendar', spend: '1.000000', resets_at: '2026-04-06T00:00:00.000000Z' });
    moveTo(h, '2026-04-05T23:59:59Z');
    expect(await h.scope('team', team)).toMatchObject({ spend: '1.000000', resets_at: '2026-04-06T00:00:00.000000Z' });
    moveTo(h, '2026-04-06T00:00:00Z');
    expect(await h.scope('team', team)).toMatchObject({
      spend: '0.000000', period_start: '2026-04-06T00:00:00.000000Z', resets_at: '2026-04-13T00:00:00.000000Z',
    });

    // 1mo (the calendar month by default) from a calendar week that began on the 6th: resets on May 1st.
    h.clock.advance(3600);
    await spend({ team }, '2');
    const month = await h.admin('PUT', `/v1/limits/team/${team}`, { budget_duration: '1mo' });
    expect(month.body).toMatchObject({ budget_align: 'calendar', spend: '2.000000', resets_at: '2026-05-01T00:00:00.000000Z' });
    const refused = await reserve({ team }, '8.5');
    expect(refused.status).toBe(429);
    expect(refused.body.error.resets_at).toBe('2026-05-01T00:00:00.000000Z');
    // From 2026-04-06T01:00:00Z to 2026-05-01T00:00:00Z: 24 days and 23 hours.
    expect(refused.headers.get('retry-after')).toBe(String(24 * 86400 + 23 * 3600));

    // A billing anchor: periods from the 15th.
    const anchored = await h.admin('PUT', `/v1/limits/team/${team}`, { budget_anchor: '2026-01-15T00:00:00Z' });
    expect(anchored.body).toMatchObject({ budget_align: 'anchor', spend: '2.000000', resets_at: '2026-04-15T00:00:00.000000Z' });
    moveTo(h, '2026-04-15T00:00:00Z');
    expect(await h.scope('team', team)).toMatchObject({
      spend: '0.000000', period_start: '2026-04-15T00:00:00.000000Z', resets_at: '2026-05-15T00:00:00.000000Z',
    });
  });

  it('a window changed to calendar days resets at midnight, and says so', async () => {
    const t = moveTo(h, '2026-04-16T10:00:00Z');
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { windows: [{ max_budget: '1', budget_duration: '1d' }] });
    await spend({ team }, '0.5');
    expect((await h.scope('team', team)).windows[0]).toMatchObject({ period_start: iso(t), resets_at: iso(t + DAY) });
    const changed = await h.admin('PUT', `/v1/limits/team/${team}`, { windows: [{ max_budget: '1', budget_duration: '1d', align: 'calendar' }] });
    expect(changed.body.windows[0]).toMatchObject({ budget_align: 'calendar', spend: '0.500000', resets_at: '2026-04-17T00:00:00.000000Z' });
    moveTo(h, '2026-04-17T00:00:00Z');
    expect((await h.scope('team', team)).windows[0]).toMatchObject({
      spend: '0.000000', period_start: '2026-04-17T00:00:00.000000Z', resets_at: '2026-04-18T00:00:00.000000Z',
    });
  });

  it('arming a duration or a window on a scope with past spend starts the new period clean', async () => {
    const t = moveTo(h, '2026-04-20T10:00:00Z');
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '5' });
    await spend({ team }, '2');
    h.clock.advance(60);

    // A window armed now counts nothing spent before it.
    const windowed = await h.admin('PUT', `/v1/limits/team/${team}`, { windows: [{ max_budget: '1', budget_duration: '1d' }] });
    expect(windowed.body).toMatchObject({ spend: '2.000000', remaining: '3.000000' });
    expect(windowed.body.windows[0]).toMatchObject({ spend: '0.000000', remaining: '1.000000', period_start: iso(t + 60_000) });
    const held = await reserve({ team }, '0.9');
    expect(held.status).toBe(201);
    await h.service('POST', `/v1/reservations/${held.body.id}/release`);

    // The main budget armed with calendar days: clean from the moment it is armed to the next midnight.
    const armed = await h.admin('PUT', `/v1/limits/team/${team}`, { budget_duration: '1d', budget_align: 'calendar' });
    expect(armed.body).toMatchObject({
      spend: '0.000000', remaining: '5.000000', period_start: iso(t + 60_000), resets_at: '2026-04-21T00:00:00.000000Z',
    });
    moveTo(h, '2026-04-21T00:00:00Z');
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.000000', period_start: '2026-04-21T00:00:00.000000Z' });
  });

  it('rejects a calendar 30d and align with an anchor, naming the field; nothing is written', async () => {
    const team = uniqueId('team');
    const thirty = await h.admin('PUT', `/v1/limits/team/${team}`, {
      windows: [{ max_budget: '1', budget_duration: '30d', align: 'calendar' }],
    });
    expect(thirty.status).toBe(400);
    expect(thirty.body.error.type).toBe('invalid_request');
    expect(thirty.body.error.issues.map((i: { path: string }) => i.path)).toEqual(['windows.0.align']);

    const both = await h.admin('PUT', `/v1/limits/team/${team}`, {
      windows: [{ max_budget: '1', budget_duration: '1d' }, { max_budget: '1', budget_duration: '1mo', align: 'calendar', anchor: '2026-01-15T00:00:00Z' }],
    });
    expect(both.status).toBe(400);
    expect(both.body.error.issues.map((i: { path: string }) => i.path)).toEqual(['windows.1.align']);

    const main = await h.admin('PUT', `/v1/limits/team/${team}`, {
      max_budget: '1', budget_duration: '1mo', budget_align: 'calendar', budget_anchor: '2026-01-15T00:00:00Z',
    });
    expect(main.status).toBe(400);
    expect(main.body.error.issues.map((i: { path: string }) => i.path)).toEqual(['budget_align']);
    expect((await h.service('GET', `/v1/limits/team/${team}`)).status).toBe(404);
  });

  it('calendar alignment on a scope that already has a 30d duration is refused too', async () => {
    moveTo(h, '2026-04-21T10:00:00Z');
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', budget_duration: '30d' });
    const before = await h.scope('team', team);
    expect(before).toMatchObject({ budget_align: 'rolling', resets_at: '2026-05-21T10:00:00.000000Z' });
    // 30d has no calendar boundaries: a 30-day budget must not quietly become one that resets every midnight.
    const aligned = await h.admin('PUT', `/v1/limits/team/${team}`, { budget_align: 'calendar' });
    expect(aligned.status).toBe(400);
    expect(aligned.body.error.issues.map((i: { path: string }) => i.path)).toEqual(['budget_align']);
    expect(await h.scope('team', team)).toEqual(before);

    // A model limit likewise; and the rest of that PUT (rpm here) is not written either.
    await h.admin('PUT', `/v1/limits/team/${team}`, { models: { 'gpt-4o': { max_budget: '1', budget_duration: '30d' } } });
    const withModel = await h.scope('team', team);
    const model = await h.admin('PUT', `/v1/limits/team/${team}`, { rpm: 7, models: { 'gpt-4o': { budget_align: 'calendar' } } });
    expect(model.status).toBe(400);
    expect(model.body.error.issues.map((i: { path: string }) => i.path)).toEqual(['models.gpt-4o.budget_align']);
    expect(await h.scope('team', team)).toEqual(withModel);
  });

  it('GET shows windows with their usage; PUT replaces them by position; windows: null removes them', async () => {
    moveTo(h, '2026-04-22T10:00:00Z');
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, {
      windows: [{ max_budget: '1', budget_duration: '1d', soft_budget: '0.5' }, { max_budget: '3', budget_duration: '7d' }],
    });
    const held = await reserve({ team }, '0.4');
    expect(held.status).toBe(201);
    expect(held.body.scopes[0].windows).toHaveLength(2);
    expect(held.body.scopes[0].windows[0]).toMatchObject({ max_budget: '1.000000', reserved: '0.400000', remaining: '0.600000', in_flight: 1 });
    let read = await h.scope('team', team);
    expect(read.windows).toHaveLength(2);
    expect(read.windows[0]).toMatchObject({ soft_budget: '0.500000', reserved: '0.400000', remaining: '0.600000', requests_in_window: 1 });
    expect(read.windows[1]).toMatchObject({ max_budget: '3.000000', reserved: '0.400000', remaining: '2.600000' });
    // A window is given whole: leaving soft_budget out clears it. The second window goes.
    const one = await h.admin('PUT', `/v1/limits/team/${team}`, { windows: [{ max_budget: '2', budget_duration: '1d' }] });
    expect(one.body.windows).toHaveLength(1);
    expect(one.body.windows[0]).toMatchObject({ max_budget: '2.000000', soft_budget: null, reserved: '0.400000', remaining: '1.600000' });

    const removed = await h.admin('PUT', `/v1/limits/team/${team}`, { windows: null });
    expect(removed.status).toBe(200);
    expect(removed.body.windows).toEqual([]);
    read = await h.scope('team', team);
    expect(read.windows).toEqual([]);
    // Nothing limits the scope any more.
    const big = await reserve({ team }, '50');
    expect(big.status).toBe(201);
    expect(big.body.scopes[0].windows).toBeUndefined();
    await h.service('POST', `/v1/reservations/${big.body.id}/release`);
    await h.service('POST', `/v1/reservations/${held.body.id}/release`);
  });

  describe("admission: 'fit'", () => {
    it('a nearly spent budget admits a small call with the hold shrunk to what remains, then refuses', async () => {
      moveTo(h, '2026-04-23T10:00:00Z');
      const key = uniqueId('key');
      const put = await h.admin('PUT', `/v1/limits/key/${key}`, { max_budget: '1', admission: 'fit' });
      expect(put.body.admission).toBe('fit');
      await spend({ key }, '0.9');

      const fitted = await reserve({ key }, '0.5');
      expect(fitted.status).toBe(201);
      expect(fitted.body.reserved_cost).toBe('0.100000');
      expect(fitted.body.estimate).toMatchObject({ cost: 0.5, fitted: true });
      expect(fitted.body.scopes[0]).toMatchObject({ spend: '0.900000', reserved: '0.100000', remaining: '0.000000' });

      // Nothing remains: refused, even a zero hold.
      const none = await reserve({ key }, '0.01');
      expect(none.status).toBe(429);
      expect(none.body.error).toMatchObject({ type: 'budget_exceeded', scope: { kind: 'key', id: key }, spend: '0.900000', reserved: '0.100000' });
      expect((await reserve({ key }, '0')).status).toBe(429);

      // The call cost more than the shrunk hold: charged in full.
      const settled = await h.service('POST', `/v1/reservations/${fitted.body.id}/settle`, { cost: '0.3' });
      expect(settled.body).toMatchObject({ actual_cost: '0.300000', released_cost: '0.000000' });
      expect(await h.scope('key', key)).toMatchObject({ spend: '1.200000', remaining: '0.000000' });

      // A hold that fits whole is not shrunk.
      const other = uniqueId('key');
      await h.admin('PUT', `/v1/limits/key/${other}`, { max_budget: '1', admission: 'fit' });
      const whole = await reserve({ key: other }, '0.5');
      expect(whole.body.reserved_cost).toBe('0.500000');
      expect(whole.body.estimate.fitted).toBeUndefined();
      await h.service('POST', `/v1/reservations/${whole.body.id}/release`);
    });

    it('a strict scope named together still requires the shrunk hold to fit', async () => {
      moveTo(h, '2026-04-24T10:00:00Z');
      const key = uniqueId('key');
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/key/${key}`, { max_budget: '1', admission: 'fit' });
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '10' });
      await spend({ key }, '0.9'); // the key has 0.1 left
      await spend({ team }, '9.95'); // the team has 0.05 left

      // The hold shrinks to 0.1 for the key; the strict team cannot take 0.1.
      const refused = await reserve({ key, team }, '0.5');
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({
        type: 'budget_exceeded', scope: { kind: 'team', id: team }, requested: '0.100000', spend: '9.950000',
      });
      expect(await h.scope('key', key)).toMatchObject({ reserved: '0.000000', remaining: '0.100000' });

      // With 0.15 left on the team the shrunk hold fits both.
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '10.1' });
      const held = await reserve({ key, team }, '0.5');
      expect(held.status).toBe(201);
      expect(held.body).toMatchObject({ reserved_cost: '0.100000' });
      expect(held.body.estimate.fitted).toBe(true);
      const [k, tm] = [held.body.scopes.find((s: { kind: string }) => s.kind === 'key'), held.body.scopes.find((s: { kind: string }) => s.kind === 'team')];
      expect(k).toMatchObject({ reserved: '0.100000', remaining: '0.000000' });
      expect(tm).toMatchObject({ reserved: '0.100000', remaining: '0.050000' });
      await h.service('POST', `/v1/reservations/${held.body.id}/release`);
    });
  });

  it('re-arming a calendar month in the month it was disarmed starts clean too', async () => {
    moveTo(h, '2027-05-03T08:00:00Z');
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', budget_duration: '1mo' });
    await spend({ team }, '0.4');
    await h.admin('PUT', `/v1/limits/team/${team}`, { budget_duration: null });
    await spend({ team }, '0.3');
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.700000', remaining: '0.300000' });
    const t = moveTo(h, '2027-05-10T12:00:00Z');
    const rearmed = await h.admin('PUT', `/v1/limits/team/${team}`, { budget_duration: '1mo' });
    expect(rearmed.body).toMatchObject({
      spend: '0.000000', remaining: '1.000000', budget_align: 'calendar', period_start: iso(t), resets_at: '2027-06-01T00:00:00.000000Z',
    });
    expect((await reserve({ team }, '1')).status).toBe(201);
  });

});
