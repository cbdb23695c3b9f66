// Budget events (GET /v1/events): soft_budget, budget_80 and budget_100 when spend + reserved reaches them, and
// budget_refused, each once per scope and budget period; newest first, paged by cursor, filtered by type, kind, id.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { OutboxEvent } from '../lib/webhooks.ts';
import { backends } from './support/databases.ts';
import { type Harness, type Reply, startHarness, uniqueId } from './support/harness.ts';

const iso = (at: number | string) => new Date(at).toISOString().replace(/Z$/, '000Z');
const MINUTE = 60_000;
const DAY = 86_400_000;

/** A scope kind no other test uses, so that filtering by kind isolates a test's events. */
function uniqueKind(): string {
  const letters = Array.from(crypto.getRandomValues(new Uint8Array(14)), (b) => String.fromCharCode(97 + (b % 26))).join('');
  return `ev_${letters}`;
}

describe.each(backends)('budget events (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend, { start: '2026-05-04T08:00:00Z' });
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  const reserve = (scopes: Record<string, string>, cost: string) => h.service('POST', '/v1/reservations', { scopes, estimate: { cost } });

  async function events(query: string): Promise<{ data: OutboxEvent[]; next_cursor: string | null }> {
    const reply = await h.service('GET', `/v1/events?${query}`);
    expect(reply.status).toBe(200);
    return reply.body;
  }

  /** Every event matching `query`, following next_cursor `size` at a time. */
  async function allPages(query: string, size: number): Promise<OutboxEvent[][]> {
    const pages: OutboxEvent[][] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 50; i++) {
      const page = await events(`${query}&limit=${size}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      pages.push(page.data);
      cursor = page.next_cursor;
      if (cursor === null) return pages;
    }
    throw new Error('too many pages');
  }

  it('thresholds count holds: soft_budget, 80% and 100% are each recorded once per period, again in the next', async () => {
    const kind = uniqueKind();
    const id = uniqueId('t');
    const scopes = { [kind]: id };
    const t0 = h.clock.now()!.getTime();
    expect((await h.admin('PUT', `/v1/limits/${kind}/${id}`, { max_budget: '10', soft_budget: '5', budget_duration: '1d' })).status).toBe(200);

    h.clock.advance(60);
    const a = await reserve(scopes, '6'); // 6 ≥ soft 5
    expect(a.status).toBe(201);
    h.clock.advance(60);
    const b = await reserve(scopes, '2.5'); // 8.5 ≥ 80% of 10, nothing spent yet
    expect(b.status).toBe(201);
    h.clock.advance(60);
    // Back under 80% and over it again, and a settle: the same period, no new events.
    expect((await h.service('POST', `/v1/reservations/${b.body.id}/release`)).status).toBe(200);
    const c = await reserve(scopes, '2.5');
    expect((await h.service('POST', `/v1/reservations/${a.body.id}/settle`, { cost: '6' })).status).toBe(200);
    h.clock.advance(60);
    const d = await reserve(scopes, '1.5'); // 6 spent + 2.5 + 1.5 held = 10
    expect(d.status).toBe(201);

    const first = await events(`kind=${kind}`);
    expect(first.next_cursor).toBeNull();
    expect(first.data.map((e) => [e.type, e.created_at])).toEqual([
      ['budget_100', iso(t0 + 4 * MINUTE)],
      ['budget_80', iso(t0 + 2 * MINUTE)],
      ['soft_budget', iso(t0 + MINUTE)],
    ]);
    for (const e of first.data) {
      expect(e.scope).toEqual({ kind, id });
      expect(e.period_start).toBe(iso(t0));
    }
    const [hundred, eighty, soft] = first.data;
    expect(soft!.details).toMatchObject({ threshold: '5.000000', spend: '0.000000', reserved: '6.000000', max_budget: '10.000000', soft_budget: '5.000000' });
    expect(eighty!.details).toMatchObject({ threshold: '8.000000', spend: '0.000000', reserved: '8.500000' });
    expect(hundred!.details).toMatchObject({ threshold: '10.000000', spend: '6.000000', reserved: '4.000000' });

    // The next day: the live holds (4) still count, the spend starts again.
    h.clock.set(new Date(t0 + DAY));
    expect((await h.service('POST', `/v1/reservations/${c.body.id}/settle`, { cost: '2.5' })).status).toBe(200); // 2.5 + 1.5 = 4
    expect((await events(`kind=${kind}`)).data).toHaveLength(3);
    h.clock.advance(60);
    const e = await reserve(scopes, '1'); // 5
    expect(e.status).toBe(201);
    h.clock.advance(60);
    const f = await reserve(scopes, '3.5'); // 8.5
    expect(f.status).toBe(201);
    const second = await events(`kind=${kind}`);
    expect(second.data.map((ev) => [ev.type, ev.period_start])).toEqual([
      ['budget_80', iso(t0 + DAY)],
      ['soft_budget', iso(t0 + DAY)],
      ['budget_100', iso(t0)],
      ['budget_80', iso(t0)],
      ['soft_budget', iso(t0)],
    ]);
    for (const r of [d, e, f]) await h.service('POST', `/v1/reservations/${r.body.id}/release`);
  });

  it('newest first, paged by next_cursor without gaps or repeats, ties included; filters by type, kind and id', async () => {
    const kind = uniqueKind();
    const ids = [uniqueId('x'), uniqueId('y')];
    for (const id of ids) {
      expect((await h.admin('PUT', `/v1/limits/${kind}/${id}`, { max_budget: '10', soft_budget: '5' })).status).toBe(200);
    }
    const t = h.clock.now()!.getTime();
    // x: one hold of 9 crosses soft_budget and 80% in one transaction (two events with one created_at); then 100%.
    // y: the same a minute later, at every step.
    const holds: Reply[] = [];
    for (const [i, id] of ids.entries()) {
      h.clock.set(new Date(t + (2 * i + 1) * MINUTE));
      holds.push(await reserve({ [kind]: id }, '9'));
      h.clock.set(new Date(t + (2 * i + 2) * MINUTE));
      holds.push(await reserve({ [kind]: id }, '1'));
    }
    expect(holds.map((r) => r.status)).toEqual([201, 201, 201, 201]);

    const whole = (await events(`kind=${kind}`)).data;
    expect(whole).toHaveLength(6);
    expect(whole.map((e) => [e.scope.id, e.type, e.created_at])).toEqual([
      [ids[1], 'budget_100', iso(t + 4 * MINUTE)],
      // Two events of one instant, in event_id order (descending); which type is first depends on the ids.
      ...[[ids[1], 'budget_80'], [ids[1], 'soft_budget']]
        .map(([id, type]) => ({ id, type, e: whole.find((x) => x.scope.id === id && x.type === type)! }))
        .sort((p, q) => (p.e.event_id < q.e.event_id ? 1 : -1))
        .map(({ id, type }) => [id, type, iso(t + 3 * MINUTE)]),
      [ids[0], 'budget_100', iso(t + 2 * MINUTE)],
      ...[[ids[0], 'budget_80'], [ids[0], 'soft_budget']]
        .map(([id, type]) => ({ id, type, e: whole.find((x) => x.scope.id === id && x.type === type)! }))
        .sort((p, q) => (p.e.event_id < q.e.event_id ? 1 : -1))
        .map(({ id, type }) => [id, type, iso(t + MINUTE)]),
    ]);

    // Pages of 1 and of 4 give the same sequence, and the last page says so with next_cursor null.
    for (const size of [1, 4]) {
      const pages = await allPages(`kind=${kind}`, size);
      expect(pages.map((p) => p.length)).toEqual(size === 1 ? [1, 1, 1, 1, 1, 1] : [4, 2]);
      expect(pages.flat().map((e) => e.event_id)).toEqual(whole.map((e) => e.event_id));
    }
    // A page exactly full at the end: next_cursor null.
    const three = await allPages(`kind=${kind}`, 3);
    expect(three.map((p) => p.length)).toEqual([3, 3]);

    // Filters.
    expect((await events(`kind=${kind}&type=budget_80`)).data.map((e) => e.scope.id)).toEqual([ids[1], ids[0]]);
    expect((await events(`kind=${kind}&id=${ids[0]}`)).data.map((e) => e.type).sort()).toEqual(['budget_100', 'budget_80', 'soft_budget']);
    expect((await events(`kind=${kind}&id=${ids[0]}&type=budget_100`)).data.map((e) => e.created_at)).toEqual([iso(t + 2 * MINUTE)]);
    expect((await events(`kind=${uniqueKind()}`)).data).toEqual([]);

    // A cursor that is not one given out is a 400.
    const bad = await h.service('GET', `/v1/events?kind=${kind}&cursor=not-a-cursor`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.issues.map((i: { path: string }) => i.path)).toEqual(['cursor']);
    for (const r of holds) await h.service('POST', `/v1/reservations/${r.body.id}/release`);
  });

  it('budget_refused once per scope and period; a refused reserve changes no counter', async () => {
    const kind = uniqueKind();
    const id = uniqueId('t');
    const scopes = { [kind]: id };
    const t0 = h.clock.now()!.getTime();
    expect((await h.admin('PUT', `/v1/limits/${kind}/${id}`, {
      max_budget: '1', budget_duration: '1d', rpm: 100, windows: [{ max_budget: '5', budget_duration: '7d' }],
    })).status).toBe(200);
    const spent = await reserve(scopes, '0.8');
    await h.service('POST', `/v1/reservations/${spent.body.id}/settle`, { cost: '0.8' });
    h.clock.advance(60);
    const before = await h.scope(kind, id);
    for (let i = 0; i < 3; i++) {
      const refused = await reserve(scopes, '0.5');
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ type: 'budget_exceeded', scope: { kind, id } });
    }
    expect(await h.scope(kind, id)).toEqual(before);
    let refusedEvents = (await events(`kind=${kind}&type=budget_refused`)).data;
    expect(refusedEvents).toHaveLength(1);
    expect(refusedEvents[0]).toMatchObject({
      scope: { kind, id }, period_start: iso(t0), created_at: iso(t0 + MINUTE),
      details: { scope: { kind, id }, limit_type: 'max_budget', max_budget: '1.000000', spend: '0.800000', reserved: '0.000000', requested: '0.500000' },
    });

    // The next day the day's budget is new; it refuses again once spent, and that is recorded again.
    h.clock.set(new Date(t0 + DAY));
    const again = await reserve(scopes, '0.9');
    await h.service('POST', `/v1/reservations/${again.body.id}/settle`, { cost: '0.9' });
    expect((await reserve(scopes, '0.5')).status).toBe(429);
    expect((await reserve(scopes, '0.5')).status).toBe(429);
    refusedEvents = (await events(`kind=${kind}&type=budget_refused`)).data;
    expect(refusedEvents.map((e) => e.period_start)).toEqual([iso(t0 + DAY), iso(t0)]);

    // A budget window's refusal names the window, once per its own period.
    // The week's window (5): 0.8 + 0.9 on the first two days, 0.9 on each of the next three = 4.4; on the sixth day
    // the day's budget has room for 0.9 but the week's does not (4.4 + 0.9 > 5).
    for (let day = 2; day < 5; day++) {
      h.clock.set(new Date(t0 + day * DAY));
      const r = await reserve(scopes, '0.9');
      expect(r.status).toBe(201);
      await h.service('POST', `/v1/reservations/${r.body.id}/settle`, { cost: '0.9' });
    }
    h.clock.set(new Date(t0 + 5 * DAY));
    for (let i = 0; i < 2; i++) {
      const byWeek = await reserve(scopes, '0.9');
      expect(byWeek.status).toBe(429);
      expect(byWeek.body.error.scope).toEqual({ kind, id, window: 1 });
    }
    const windowEvents = (await events(`kind=${kind}&type=budget_refused`)).data.filter((e) => e.scope.window === 1);
    expect(windowEvents).toHaveLength(1);
    expect(windowEvents[0]).toMatchObject({ scope: { kind, id, window: 1 }, details: { spend: '4.400000', requested: '0.900000' } });

    // Rate limits record no event.
    await h.admin('PUT', `/v1/limits/${kind}/${id}`, { rpm: 0 });
    const rate = await reserve(scopes, '0.01');
    expect(rate.body.error.type).toBe('rate_limit_exceeded');
    expect((await events(`kind=${kind}&type=budget_refused`)).data).toHaveLength(3);
  });
});
