// POST /v1/reservations/check: what a reserve with this body would answer, with nothing written.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, type Reply, startHarness, uniqueId } from './support/harness.ts';

// gpt-4o, one user message "hi" (8 input tokens) and max_tokens 32: 8 × 0.0000025 + 32 × 0.00001 = 0.00034.
const HI = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 32 };

/** The headers a reserve answer carries about limits: x-ratelimit-* and Retry-After. */
function limitHeaders(reply: Reply): Record<string, string> {
  const out: Record<string, string> = {};
  reply.headers.forEach((value, name) => {
    if (name.startsWith('x-ratelimit-') || name === 'retry-after') out[name] = value;
  });
  return out;
}

/** Rows in every table a reserve can write to. */
async function rowCounts(h: Harness): Promise<Record<string, number>> {
  const [row] = await h.db.query<Record<string, number>>(
    `select (select count(*)::int from spendgate.reservations) as reservations,
            (select count(*)::int from spendgate.reservation_counters) as reservation_counters,
            (select count(*)::int from spendgate.counters) as counters,
            (select count(*)::int from spendgate.events) as events,
            (select count(*)::int from spendgate.refusals) as refusals`);
  return row!;
}

describe.each(backends)('reservation check (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  const check = (body: unknown, headers?: Record<string, string>) => h.service('POST', '/v1/reservations/check', body, headers);
  const reserve = (body: unknown, headers?: Record<string, string>) => h.service('POST', '/v1/reservations', body, headers);

  it('admitted: 200 with the hold a reserve then takes, the same scopes and headers, and nothing written', async () => {
    const key = uniqueId('key');
    const team = uniqueId('team');
    // A check that would cross 80% of the team's budget (0.00034 of 0.0004) records no event either.
    expect((await h.admin('PUT', `/v1/limits/key/${key}`, { max_budget: '1', rpm: 10, tpm: 1000 })).status).toBe(200);
    expect((await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '0.0004', rpm: 5 })).status).toBe(200);
    const body = { scopes: { key, team }, model: 'gpt-4o', request: HI };
    const before = await Promise.all([h.scope('key', key), h.scope('team', team)]);
    const rows = await rowCounts(h);

    const peek = await check(body);
    expect(peek.status).toBe(200);
    expect(peek.body).toMatchObject({
      admitted: true, reserved_cost: '0.000340', reserved_tokens: 40, reserved_input_tokens: 8, reserved_output_tokens: 32,
    });
    expect(peek.body.id).toBeUndefined();
    expect(peek.body.scopes.find((s: { kind: string }) => s.kind === 'key')).toMatchObject({
      reserved: '0.000340', requests_in_window: 1, tokens_in_window: 40, requests_remaining: 9, tokens_remaining: 960,
    });
    expect(limitHeaders(peek)).toMatchObject({
      'x-ratelimit-key-remaining-requests': '9', 'x-ratelimit-team-remaining-requests': '4', 'x-ratelimit-remaining-tokens': '960',
    });

    expect(await Promise.all([h.scope('key', key), h.scope('team', team)])).toEqual(before);
    expect(await rowCounts(h)).toEqual(rows);

    const held = await reserve(body);
    expect(held.status).toBe(201);
    expect(held.body.reserved_cost).toBe(peek.body.reserved_cost);
    expect(held.body.estimate).toEqual(peek.body.estimate);
    expect(held.body.scopes).toEqual(peek.body.scopes);
    expect(limitHeaders(held)).toEqual(limitHeaders(peek));
    // The reserve, unlike the check, records the threshold.
    const events = await h.service('GET', `/v1/events?kind=team&id=${team}`);
    expect(events.body.data.map((e: { type: string }) => e.type)).toEqual(['budget_80']);
    await h.service('POST', `/v1/reservations/${held.body.id}/release`);
  });

  it('a scope never seen stays unseen', async () => {
    const user = uniqueId('user');
    const peek = await check({ scopes: { user }, estimate: { cost: '0.25', tokens: 10 } });
    expect(peek.status).toBe(200);
    expect(peek.body.scopes[0]).toMatchObject({ kind: 'user', id: user, reserved: '0.250000', requests_in_window: 1 });
    expect((await h.service('GET', `/v1/limits/user/${user}`)).status).toBe(404);
  });

  it.each([
    { case: 'rpm', limit: { rpm: 1 }, first: '0.01', type: 'rate_limit_exceeded' },
    { case: 'max_budget', limit: { max_budget: '1', budget_duration: '1d' }, first: '0.9', type: 'budget_exceeded' },
    { case: 'max_parallel', limit: { max_parallel: 1 }, first: '0.01', type: 'parallel_limit_exceeded' },
  ])('refused by $case: the same 429 a reserve gets, same body and headers, and nothing written', async ({ limit, first, type }) => {
    const key = uniqueId('key');
    expect((await h.admin('PUT', `/v1/limits/key/${key}`, { ...limit, tpm: 10000 })).status).toBe(200);
    expect((await reserve({ scopes: { key }, estimate: { cost: first, tokens: 100 } })).status).toBe(201);
    h.clock.advance(7);
    const body = { scopes: { key }, estimate: { cost: '0.2', tokens: 100 } };
    const before = await h.scope('key', key);
    const rows = await rowCounts(h);

    const peek = await check(body);
    expect(peek.status).toBe(429);
    expect(peek.body.error.type).toBe(type);
    expect(await h.scope('key', key)).toEqual(before);
    // No refusal kept and no event (a reserve's budget refusal records budget_refused).
    expect(await rowCounts(h)).toEqual(rows);

    const refused = await reserve(body);
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual(peek.body);
    expect(limitHeaders(refused)).toEqual(limitHeaders(peek));
    expect(peek.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(await h.scope('key', key)).toEqual(before);
  });

  it('an idempotency key is not remembered: a reserve with the same key afterwards is evaluated fresh', async () => {
    const key = uniqueId('key');
    expect((await h.admin('PUT', `/v1/limits/key/${key}`, { rpm: 0 })).status).toBe(200);
    const body = { scopes: { key }, estimate: { cost: '0.01' } };
    const idem = uniqueId('idem');

    // In the body and as the header.
    expect((await check({ ...body, idempotency_key: idem })).status).toBe(429);
    expect((await check(body, { 'idempotency-key': `${idem}-h` })).status).toBe(429);
    // A reserve with the key would now replay its refusal; after a check there is none to replay.
    expect((await h.admin('PUT', `/v1/limits/key/${key}`, { rpm: 10 })).status).toBe(200);
    const fresh = await reserve({ ...body, idempotency_key: idem });
    expect(fresh.status).toBe(201);
    expect(fresh.headers.get('idempotent-replayed')).toBeNull();
    const freshHeader = await reserve(body, { 'idempotency-key': `${idem}-h` });
    expect(freshHeader.status).toBe(201);

    // A check with the key of a reservation answers for a new request, not the reservation, and holds nothing.
    const rows = await rowCounts(h);
    const again = await check({ ...body, idempotency_key: idem });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    expect(again.body).toMatchObject({ admitted: true });
    expect(again.body.id).toBeUndefined();
    expect(again.body.scopes[0]).toMatchObject({ requests_in_window: 3, in_flight: 3 });
    expect(await rowCounts(h)).toEqual(rows);
    expect(await h.scope('key', key)).toMatchObject({ requests_in_window: 2, in_flight: 2 });
    for (const r of [fresh, freshHeader]) await h.service('POST', `/v1/reservations/${r.body.id}/release`);
  });

  it('the stale holds a reserve would expire are counted as gone, but stay unwritten', async () => {
    const key = uniqueId('key');
    expect((await h.admin('PUT', `/v1/limits/key/${key}`, { max_parallel: 1 })).status).toBe(200);
    const stale = await reserve({ scopes: { key }, estimate: { cost: '0.01' }, ttl_seconds: 30 });
    expect(stale.status).toBe(201);
    h.clock.advance(31);
    const peek = await check({ scopes: { key }, estimate: { cost: '0.01' } });
    expect(peek.status).toBe(200);
    expect(peek.body.scopes[0]).toMatchObject({ in_flight: 1 });
    const [row] = await h.db.query<{ status: string }>('select status from spendgate.reservations where id = $1', [stale.body.id]);
    expect(row!.status).toBe('held');
    const [counter] = await h.db.query<{ in_flight: number }>(
      `select in_flight from spendgate.counters where kind = 'key' and id = $1 and model = ''`, [key]);
    expect(counter!.in_flight).toBe(1);
  });
});
