// /metrics read with a Prometheus text-format parser (parse-prometheus-text-format), and the request log.
import parsePrometheusTextFormat, { type MetricFamily, type Sample } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../lib/app.ts';
import { loadConfig } from '../lib/config.ts';
import { DatabaseUnavailable } from '../lib/db.ts';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, tokens, uniqueId } from './support/harness.ts';

type Scrape = MetricFamily[];

function family(scrape: Scrape, name: string): MetricFamily {
  const found = scrape.find((f) => f.name === name);
  if (!found) throw new Error(`no metric ${name} in the scrape`);
  return found;
}

const matches = (sample: Sample, labels: Record<string, string>) =>
  Object.entries(labels).every(([k, v]) => (sample.labels ?? {})[k] === v) &&
  Object.keys(sample.labels ?? {}).length === Object.keys(labels).length;

/** A counter's value for exactly these labels (0 when the series does not exist yet). */
function counter(scrape: Scrape, name: string, labels: Record<string, string> = {}): number {
  const f = family(scrape, name);
  expect(f.type).toBe('COUNTER');
  const sample = f.metrics.find((m) => matches(m, labels));
  return sample ? Number(sample.value) : 0;
}

function histogramCount(scrape: Scrape, name: string): number {
  const f = family(scrape, name);
  expect(f.type).toBe('HISTOGRAM');
  const [sample] = f.metrics;
  // Buckets are cumulative and end at +Inf, which equals the count.
  expect(sample?.buckets?.['+Inf']).toBe(sample?.count);
  return Number(sample?.count ?? 0);
}

function histogramSum(scrape: Scrape, name: string): number {
  const [sample] = family(scrape, name).metrics;
  return Number(sample?.sum ?? 0);
}

describe.each(backends)('metrics and request log (%s)', (backend) => {
  let h: Harness;
  const lines: string[] = [];
  const scrape = async (): Promise<Scrape> => {
    const reply = await h.admin('GET', '/metrics');
    expect(reply.status).toBe(200);
    expect(reply.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    return parsePrometheusTextFormat(reply.body);
  };

  beforeAll(async () => {
    h = await startHarness(backend, { logRequest: (line) => lines.push(line) });
  });
  afterAll(() => h.close());

  it('is for the admin token only', async () => {
    expect((await h.as('anonymous')('GET', '/metrics')).status).toBe(401);
    expect((await h.service('GET', '/metrics')).status).toBe(403);
    expect((await h.as('cron')('GET', '/metrics')).status).toBe(403);
  });

  it('counts reservations by outcome and reason, settled cost, latency, sweeps and expired holds', async () => {
    const before = await scrape();
    const team = uniqueId('team');
    const user = uniqueId('user');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1' });
    await h.admin('PUT', `/v1/limits/user/${user}`, { rpm: 1 });

    const idem = uniqueId('idem');
    const first = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.5' }, idempotency_key: idem });
    expect((await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.5' }, idempotency_key: idem })).status).toBe(200);
    expect((await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.75' } })).status).toBe(429);
    expect((await h.service('POST', '/v1/reservations', { scopes: { user }, estimate: { cost: '0' } })).status).toBe(201);
    expect((await h.service('POST', '/v1/reservations', { scopes: { user }, estimate: { cost: '0' } })).status).toBe(429);
    expect((await h.service('POST', '/v1/reservations', { scopes: {} })).status).toBe(400);

    const settle = { cost: '0.25', usage: { prompt_tokens: 10, completion_tokens: 5 } };
    expect((await h.service('POST', `/v1/reservations/${first.body.id}/settle`, settle)).status).toBe(200);
    expect((await h.service('POST', `/v1/reservations/${first.body.id}/settle`, settle)).status).toBe(200); // replay
    expect((await h.service('POST', `/v1/reservations/${first.body.id}/settle`, { cost: '0.3' })).status).toBe(409);

    const key = uniqueId('key');
    const stale = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.125' }, ttl_seconds: 1 });
    await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0' }, ttl_seconds: 1 });
    h.clock.advance(5);
    expect((await h.admin('POST', '/v1/sweep')).body.expired).toBeGreaterThanOrEqual(2);
    expect((await h.service('POST', `/v1/reservations/${stale.body.id}/settle`, { cost: '0.125' })).body.late).toBe(true);

    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => counter(after, name, labels) - counter(before, name, labels);
    expect(delta('spendgate_reservations_total', { outcome: 'held' })).toBe(4);
    expect(delta('spendgate_reservations_total', { outcome: 'replayed' })).toBe(1);
    expect(delta('spendgate_reservations_total', { outcome: 'refused', reason: 'budget_exceeded' })).toBe(1);
    expect(delta('spendgate_reservations_total', { outcome: 'refused', reason: 'rate_limit_exceeded' })).toBe(1);
    expect(delta('spendgate_reservations_total', { outcome: 'invalid' })).toBe(1);
    expect(delta('spendgate_settles_total', { outcome: 'settled' })).toBe(1);
    expect(delta('spendgate_settles_total', { outcome: 'replayed' })).toBe(1);
    expect(delta('spendgate_settles_total', { outcome: 'conflict' })).toBe(1);
    expect(delta('spendgate_settles_total', { outcome: 'late' })).toBe(1);
    expect(delta('spendgate_settled_cost_dollars_total')).toBe(0.375); // 0.25 + 0.125, the replay not again
    expect(histogramCount(after, 'spendgate_reserve_duration_seconds') - histogramCount(before, 'spendgate_reserve_duration_seconds')).toBe(8);
    expect(histogramCount(after, 'spendgate_settle_duration_seconds') - histogramCount(before, 'spendgate_settle_duration_seconds')).toBe(4);
    expect(delta('spendgate_sweeps_total')).toBe(1);
    expect(delta('spendgate_swept_holds_total')).toBeGreaterThanOrEqual(2);
    expect(delta('spendgate_http_requests_total', { method: 'POST', route: '/v1/reservations', status: '429' })).toBe(2);
    expect(counter(after, 'spendgate_database_errors_total')).toBe(0);
    h.clock.set('2026-03-10T12:00:00Z');
  });

  it("counts group commit's transactions, the calls in each and each call's wait for one", async () => {
    const before = await scrape();
    const answers = await Promise.all(Array.from({ length: 40 }, () =>
      h.service('POST', '/v1/reservations', { scopes: { key: uniqueId('batched') }, estimate: { cost: '0' } })));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 201));
    const after = await scrape();
    const grew = (read: typeof histogramCount, name: string) => read(after, name) - read(before, name);
    const transactions = grew(histogramCount, 'spendgate_ledger_calls_per_transaction');
    // Every call in exactly one transaction; arriving together, they shared some.
    expect(grew(histogramSum, 'spendgate_ledger_calls_per_transaction')).toBe(40);
    expect(transactions).toBeGreaterThan(0);
    expect(transactions).toBeLessThan(40);
    expect(grew(histogramCount, 'spendgate_ledger_transaction_duration_seconds')).toBe(transactions);
    expect(grew(histogramSum, 'spendgate_ledger_transaction_duration_seconds')).toBeGreaterThan(0);
    expect(grew(histogramCount, 'spendgate_ledger_queue_wait_seconds')).toBe(40);
  });

  it('counts database errors', async () => {
    const down = {
      query: async () => {
        throw new DatabaseUnavailable('database unavailable (ECONNREFUSED)');
      },
    };
    const config = loadConfig({ SPENDGATE_ADMIN_TOKEN: tokens.admin, SPENDGATE_SERVICE_TOKEN: tokens.service }, { allowGeneratedTokens: false });
    const app = createApp({ db: down, config, logError: () => {}, logRequest: () => {} });
    expect((await app.request('/health')).status).toBe(503);
    const auth = { authorization: `Bearer ${tokens.service}`, 'content-type': 'application/json' };
    const reserve = await app.request('/v1/reservations', { method: 'POST', headers: auth, body: JSON.stringify({ scopes: { key: 'k' }, estimate: { cost: '1' } }) });
    expect(reserve.status).toBe(503);
    const scraped = parsePrometheusTextFormat(await (await app.request('/metrics', { headers: { authorization: `Bearer ${tokens.admin}` } })).text());
    expect(counter(scraped, 'spendgate_database_errors_total', { kind: 'unavailable' })).toBe(2);
    expect(counter(scraped, 'spendgate_reservations_total', { outcome: 'error' })).toBe(1);
  });

  it('logs one JSON line per request with its request id, never a token or a prompt', async () => {
    lines.length = 0;
    const secret = 'the secret prompt text';
    const team = uniqueId('team');
    const held = await h.service('POST', '/v1/reservations',
      { scopes: { team }, model: 'gpt-4o', request: { messages: [{ role: 'user', content: secret }], max_tokens: 5 } },
      { 'x-request-id': 'trace-abc-123' });
    expect(held.status).toBe(201);
    expect(held.headers.get('x-request-id')).toBe('trace-abc-123');
    const missing = await h.service('GET', `/v1/reservations/${crypto.randomUUID()}`);
    expect(missing.status).toBe(404);
    const generatedId = missing.headers.get('x-request-id');
    expect(generatedId).toMatch(/^[0-9a-f-]{36}$/);

    expect(lines).toHaveLength(2);
    const [reserveLine, missingLine] = lines.map((line) => JSON.parse(line));
    expect(reserveLine).toMatchObject({
      msg: 'request', level: 'info', request_id: 'trace-abc-123', method: 'POST', route: '/v1/reservations',
      path: '/v1/reservations', status: 201, role: 'service',
    });
    expect(typeof reserveLine.duration_ms).toBe('number');
    expect(Date.parse(reserveLine.time)).not.toBeNaN();
    expect(missingLine).toMatchObject({ request_id: generatedId, route: '/v1/reservations/:id', status: 404, error: 'not_found', level: 'warn' });
    for (const line of lines) {
      expect(line).not.toContain(secret);
      expect(line).not.toContain(tokens.service);
      expect(line).not.toContain('Bearer');
    }
  });
});
