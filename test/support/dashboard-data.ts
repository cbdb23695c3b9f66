import { expect } from 'vitest';
import type { Harness } from './harness.ts';

/** Where the manual clock must start for seedDashboard (pass it as the harness's `start`). */
export const dashboardStart = '2026-03-10T08:10:00Z';
/** Where seedDashboard leaves the clock: the dashboard is read at this time. */
export const dashboardNow = '2026-03-10T12:30:00.000000Z';

/**
 * Four and a half hours of traffic through the API on a fresh database, driven by the manual clock:
 *   team research  max 20/day (soft 10) with a monthly window of 100: settles 1.25 (08h), 2.50 (09h), 3.00 (10h),
 *                  1.50 (12h), then holds 2.00 (in flight) — which crosses its soft budget;
 *   team support   max 5/day: settles 0.75 (09h), 4.00 (11h) — 80% crossed — then is refused 1.00 by its budget;
 *   key sk-batch   rpm 1: settles 0.10 (12h), then a second call in the same minute is refused by the rate limit;
 *   user alice     max_parallel 1: holds 0.50 (in flight), a second hold is refused by the parallel limit;
 *   key sk-stale   holds 1.00 for a minute at 12:00 that nobody settles: expired by 12:30, swept or not.
 * So: spend per hour 1.25, 3.25, 3.00, 4.00, 1.60 (13.10 in all); 2 holds in flight worth 2.50; three refusals,
 * one of each type; events soft_budget (research), budget_80 and budget_refused (support).
 */
export async function seedDashboard(h: Harness): Promise<void> {
  const ok = async (status: number, reply: Promise<{ status: number; body: unknown }>) => {
    const answer = await reply;
    expect(answer.status, JSON.stringify(answer.body)).toBe(status);
    return answer.body as { id: string };
  };
  const at = (time: string) => h.clock.set(`2026-03-10T${time}Z`);
  const spend = async (scopes: Record<string, string>, cost: string) => {
    const held = await ok(201, h.service('POST', '/v1/reservations', { scopes, estimate: { cost } }));
    await ok(200, h.service('POST', `/v1/reservations/${held.id}/settle`, { cost }));
  };

  at('08:10:00');
  await ok(200, h.admin('PUT', '/v1/limits/team/research', {
    max_budget: '20', soft_budget: '10', budget_duration: '1d',
    windows: [{ max_budget: '100', budget_duration: '1mo' }],
  }));
  await ok(200, h.admin('PUT', '/v1/limits/team/support', { max_budget: '5', budget_duration: '1d' }));
  await ok(200, h.admin('PUT', '/v1/limits/key/sk-batch', { rpm: 1 }));
  await ok(200, h.admin('PUT', '/v1/limits/user/alice', { max_parallel: 1 }));
  await spend({ team: 'research' }, '1.25');
  at('09:05:00');
  await spend({ team: 'research' }, '2.50');
  at('09:40:00');
  await spend({ team: 'support' }, '0.75');
  at('10:15:00');
  await spend({ team: 'research' }, '3.00');
  at('11:20:00');
  await spend({ team: 'support' }, '4.00');
  at('12:00:00');
  await ok(201, h.service('POST', '/v1/reservations', { scopes: { key: 'sk-stale' }, estimate: { cost: '1.00' }, ttl_seconds: 60 }));
  at('12:05:00');
  await spend({ team: 'research' }, '1.50');
  at('12:10:00');
  await ok(429, h.service('POST', '/v1/reservations', { scopes: { team: 'support' }, estimate: { cost: '1.00' } }));
  at('12:20:00');
  await ok(201, h.service('POST', '/v1/reservations', { scopes: { team: 'research' }, model: 'gpt-4o', estimate: { cost: '2.00' }, ttl_seconds: 3600 }));
  at('12:25:00');
  await ok(201, h.service('POST', '/v1/reservations', { scopes: { user: 'alice' }, estimate: { cost: '0.50' }, ttl_seconds: 1800 }));
  await ok(429, h.service('POST', '/v1/reservations', { scopes: { user: 'alice' }, estimate: { cost: '0.50' } }));
  at('12:26:00');
  await spend({ key: 'sk-batch' }, '0.10');
  at('12:26:01');
  await ok(429, h.service('POST', '/v1/reservations', { scopes: { key: 'sk-batch' }, estimate: { cost: '0.10' } }));
  at('12:30:00');
}
