// GET /v1/dashboard: what the page shows, as numbers, from traffic driven through the API over several hours; and
// the page itself as served (the browser test, dashboard.browser.test.ts, renders it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/databases.ts';
import { dashboardNow, dashboardStart, seedDashboard } from './support/dashboard-data.ts';
import { type Harness, startHarness } from './support/harness.ts';

describe.each(backends)('GET /v1/dashboard (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend, { start: dashboardStart });
    await seedDashboard(h);
  });
  afterAll(() => h?.close());

  it('is for the admin token only', async () => {
    expect((await h.as('anonymous')('GET', '/v1/dashboard')).status).toBe(401);
    expect((await h.service('GET', '/v1/dashboard')).status).toBe(403);
    expect((await h.as('cron')('GET', '/v1/dashboard')).status).toBe(403);
  });

  it('shows the scopes by spend with their budgets, budget windows and utilization', async () => {
    const { body, status } = await h.admin('GET', '/v1/dashboard');
    expect(status).toBe(200);
    expect(body).toMatchObject({ at: dashboardNow, scope_count: 5, webhook_configured: false });
    expect(body.scopes.map((s: { kind: string; id: string }) => `${s.kind}/${s.id}`))
      .toEqual(['team/research', 'team/support', 'user/alice', 'key/sk-batch', 'key/sk-stale']);
    const [research, support, alice, , stale] = body.scopes;
    expect(research).toMatchObject({
      spend: '8.250000', reserved: '2.000000', max_budget: '20.000000', soft_budget: '10.000000', remaining: '9.750000',
      spend_percent: '41.3', reserved_percent: '10.0', in_flight: 1, budget_duration: '1d',
      period_start: '2026-03-10T08:10:00.000000Z', resets_at: '2026-03-11T08:10:00.000000Z',
    });
    expect(research.windows).toEqual([expect.objectContaining({
      max_budget: '100.000000', budget_duration: '1mo', spend: '8.250000', reserved: '2.000000',
      spend_percent: '8.3', reserved_percent: '2.0', resets_at: '2026-04-01T00:00:00.000000Z',
    })]);
    expect(support).toMatchObject({ spend: '4.750000', reserved: '0.000000', spend_percent: '95.0', reserved_percent: '0.0' });
    expect(alice).toMatchObject({ spend: '0.000000', reserved: '0.500000', max_budget: null, spend_percent: null, max_parallel: 1 });
    // Its hold expired at 12:01 and nobody swept: it holds nothing any more.
    expect(stale).toMatchObject({ reserved: '0.000000', in_flight: 0 });
  });

  it('shows live holds oldest first, refusals of the last day by reason, spend per hour and the latest events', async () => {
    const { body } = await h.admin('GET', '/v1/dashboard');
    expect(body.holds).toEqual({
      count: 2,
      amount: '2.500000',
      oldest: [
        expect.objectContaining({ model: 'gpt-4o', reserved_cost: '2.000000', created_at: '2026-03-10T12:20:00.000000Z',
                                  expires_at: '2026-03-10T13:20:00.000000Z', scopes: [{ kind: 'team', id: 'research' }] }),
        expect.objectContaining({ model: null, reserved_cost: '0.500000', created_at: '2026-03-10T12:25:00.000000Z',
                                  expires_at: '2026-03-10T12:55:00.000000Z', scopes: [{ kind: 'user', id: 'alice' }] }),
      ],
    });
    expect(body.refusals.by_type).toEqual({ budget_exceeded: 1, rate_limit_exceeded: 1, parallel_limit_exceeded: 1 });
    expect(body.refusals.latest.map((r: { type: string; scope: unknown; created_at: string }) => [r.type, r.scope, r.created_at])).toEqual([
      ['rate_limit_exceeded', { kind: 'key', id: 'sk-batch' }, '2026-03-10T12:26:01.000000Z'],
      ['parallel_limit_exceeded', { kind: 'user', id: 'alice' }, '2026-03-10T12:25:00.000000Z'],
      ['budget_exceeded', { kind: 'team', id: 'support' }, '2026-03-10T12:10:00.000000Z'],
    ]);

    expect(body.spend).toHaveLength(48);
    expect(body.spend[0].hour).toBe('2026-03-08T13:00:00.000000Z');
    expect(body.spend.slice(-5)).toEqual([
      { hour: '2026-03-10T08:00:00.000000Z', cost: '1.250000', settled: 1 },
      { hour: '2026-03-10T09:00:00.000000Z', cost: '3.250000', settled: 2 },
      { hour: '2026-03-10T10:00:00.000000Z', cost: '3.000000', settled: 1 },
      { hour: '2026-03-10T11:00:00.000000Z', cost: '4.000000', settled: 1 },
      { hour: '2026-03-10T12:00:00.000000Z', cost: '1.600000', settled: 2 },
    ]);
    expect(body.spend.slice(0, -5).every((hour: { cost: string }) => hour.cost === '0.000000')).toBe(true);
    expect(body.spend_total).toBe('13.100000');

    expect(body.events.map((e: { type: string; scope: { id: string } }) => [e.type, e.scope.id])).toEqual([
      ['soft_budget', 'research'], ['budget_refused', 'support'], ['budget_80', 'support'],
    ]);
    expect(body.events[0]).toMatchObject({ delivered_at: null, attempts: 0, details: { threshold: '10.000000' } });
    expect(body.undelivered_events).toBe(3);
  });

  it('takes the hours of history to show', async () => {
    const { body } = await h.admin('GET', '/v1/dashboard?hours=3');
    expect(body.spend.map((s: { cost: string }) => s.cost)).toEqual(['3.000000', '4.000000', '1.600000']);
    expect(body.spend_total).toBe('8.600000');
    expect((await h.admin('GET', '/v1/dashboard?hours=0')).status).toBe(400);
    expect((await h.admin('GET', '/v1/dashboard?hours=169')).status).toBe(400);
  });

  it('answers on an empty database too', async () => {
    const empty = await startHarness(backend);
    try {
      const { body, status } = await empty.admin('GET', '/v1/dashboard?hours=24');
      expect(status).toBe(200);
      expect(body).toMatchObject({ scopes: [], scope_count: 0, holds: { count: 0, amount: '0.000000', oldest: [] },
                                   refusals: { by_type: {}, latest: [] }, events: [], spend_total: '0.000000' });
      expect(body.spend).toHaveLength(24);
    } finally {
      await empty.close();
    }
  });
});

describe('GET /dashboard', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('pglite');
  });
  afterAll(() => h?.close());

  it('serves the page, its script and its stylesheet without a token, under a CSP that allows only this origin', async () => {
    for (const [path, type] of [['/dashboard', 'text/html'], ['/dashboard/app.js', 'text/javascript'], ['/dashboard/app.css', 'text/css']]) {
      const res = await h.app.request(path!);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
    const page = await (await h.app.request('/dashboard')).text();
    expect(page).toContain('<script src="/dashboard/app.js" defer></script>');
    expect(page).not.toMatch(/<script>|<style>| style="/);
  });
});
