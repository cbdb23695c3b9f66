// Webhook delivery from the events outbox: a real HTTP receiver, the sweep route as cron calls it, and the manual
// clock to move through the retry schedule. Signatures are checked with node:crypto, independently of the Web
// Crypto code that made them.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliverDueEvents, type OutboxEvent } from '../lib/webhooks.ts';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, uniqueId } from './support/harness.ts';

const secretBytes = Buffer.from('spendgate webhook test key, 32 b');
const secret = `whsec_${secretBytes.toString('base64')}`;

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  answered: number;
}

/** A receiver that answers 500 to the first two attempts at each event, then 204. */
async function flakyReceiver() {
  const received: Received[] = [];
  const attemptsById = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const id = String(req.headers['webhook-id']);
      const attempt = (attemptsById.get(id) ?? 0) + 1;
      attemptsById.set(id, attempt);
      const answered = attempt <= 2 ? 500 : 204;
      received.push({ headers: req.headers, body, answered });
      res.writeHead(answered).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/spendgate`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The Standard Webhooks signature, computed here with node:crypto. */
function expectedSignature(headers: IncomingHttpHeaders, body: string): string {
  const signed = `${String(headers['webhook-id'])}.${String(headers['webhook-timestamp'])}.${body}`;
  return `v1,${createHmac('sha256', secretBytes).update(signed).digest('base64')}`;
}

describe.each(backends)('webhooks (%s)', (backend) => {
  let receiver: Awaited<ReturnType<typeof flakyReceiver>>;
  let h: Harness;

  beforeAll(async () => {
    receiver = await flakyReceiver();
    h = await startHarness(backend, { env: { SPENDGATE_WEBHOOK_URL: receiver.url, SPENDGATE_WEBHOOK_SECRET: secret } });
  });
  afterAll(async () => {
    await h?.close();
    await receiver?.close();
  });

  const sweep = async () => {
    const reply = await h.as('cron')('POST', '/v1/sweep');
    expect(reply.status).toBe(200);
    return reply.body.webhooks;
  };
  const outbox = () =>
    h.db.query<{ event_id: string; attempts: number; next_attempt_at: Date | null; delivered_at: Date | null; last_error: string | null }>(
      'select event_id, attempts, next_attempt_at, delivered_at, last_error from spendgate.events order by created_at, event_id');

  it('delivers each threshold crossing (soft budget, 80%, 100%) and a budget refusal once each, signed, after two failed attempts with backoff', async () => {
    const team = uniqueId('team');
    expect((await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '10', soft_budget: '5', budget_duration: '1d' })).status).toBe(200);
    // 8.5 of 10 crosses the soft budget and 80%; 1.5 more reaches 100%; the next 5 does not fit and is refused by
    // the budget.
    expect((await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '8.5' } })).status).toBe(201);
    expect((await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '1.5' } })).status).toBe(201);
    const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '5' } });
    expect(refused.status).toBe(429);
    expect(refused.body.error.type).toBe('budget_exceeded');

    const events = (await h.service('GET', `/v1/events?kind=team&id=${team}`)).body.data as OutboxEvent[];
    expect(events.map((e) => e.type).sort()).toEqual(['budget_100', 'budget_80', 'budget_refused', 'soft_budget']);

    // First attempt: all four fail, and nothing is due again until the first retry delay (60 s) has passed.
    expect(await sweep()).toEqual({ delivered: 0, failed: 4, complete: true });
    expect(await sweep()).toEqual({ delivered: 0, failed: 0, complete: true });
    const afterFirst = await outbox();
    expect(afterFirst).toHaveLength(4);
    for (const row of afterFirst) {
      expect(row).toMatchObject({ attempts: 1, delivered_at: null, last_error: 'HTTP 500' });
      expect(row.next_attempt_at?.toISOString()).toBe('2026-03-10T12:01:00.000Z');
    }
    h.clock.advance(59);
    expect(await sweep()).toEqual({ delivered: 0, failed: 0, complete: true });
    h.clock.advance(1);
    // Second attempt fails too; the next delay doubles to 120 s.
    expect(await sweep()).toEqual({ delivered: 0, failed: 4, complete: true });
    for (const row of await outbox()) {
      expect(row).toMatchObject({ attempts: 2, delivered_at: null });
      expect(row.next_attempt_at?.toISOString()).toBe('2026-03-10T12:03:00.000Z');
    }
    h.clock.advance(119);
    expect(await sweep()).toEqual({ delivered: 0, failed: 0, complete: true });
    h.clock.advance(1);
    expect(await sweep()).toEqual({ delivered: 4, failed: 0, complete: true });
    h.clock.advance(24 * 3600);
    expect(await sweep()).toEqual({ delivered: 0, failed: 0, complete: true });

    for (const row of await outbox()) {
      expect(row).toMatchObject({ attempts: 3, next_attempt_at: null, last_error: null });
      expect(row.delivered_at?.toISOString()).toBe('2026-03-10T12:03:00.000Z');
    }
    // Twelve requests: three attempts at each of the four events, every one signed and carrying the event id.
    expect(receiver.received).toHaveLength(12);
    for (const request of receiver.received) {
      expect(request.headers['content-type']).toBe('application/json');
      expect(request.headers['webhook-signature']).toBe(expectedSignature(request.headers, request.body));
      const body = JSON.parse(request.body);
      expect(request.headers['webhook-id']).toBe(body.data.event_id);
      expect(body.type).toBe(body.data.type);
    }
    // Each event was attempted three times and answered 500, 500, 204, in that order.
    for (const event of events) {
      expect(receiver.received.filter((r) => r.headers['webhook-id'] === event.event_id).map((r) => r.answered))
        .toEqual([500, 500, 204]);
    }
    // The attempts were stamped with the clock at each sweep: 12:00:00, 12:01:00, 12:03:00.
    expect([...new Set(receiver.received.map((r) => r.headers['webhook-timestamp']))]).toEqual(
      ['2026-03-10T12:00:00Z', '2026-03-10T12:01:00Z', '2026-03-10T12:03:00Z'].map((t) => String(Date.parse(t) / 1000)));
    // Each event accepted exactly once, with the body GET /v1/events shows.
    const accepted = receiver.received.filter((r) => r.answered === 204).map((r) => JSON.parse(r.body));
    expect(accepted).toHaveLength(4);
    expect(accepted.map((b) => b.data.event_id).sort()).toEqual(events.map((e) => e.event_id).sort());
    for (const event of events) {
      expect(accepted.find((b) => b.data.event_id === event.event_id)).toEqual({ type: event.type, timestamp: event.created_at, data: event });
    }
    const refusal = accepted.find((b) => b.type === 'budget_refused');
    expect(refusal.data.details).toMatchObject({ scope: { kind: 'team', id: team }, limit: '10.000000' });
    const crossing = accepted.find((b) => b.type === 'budget_80');
    expect(crossing.data.details).toMatchObject({ threshold: '8.000000', spend: '0.000000', reserved: '8.500000', max_budget: '10.000000' });
    const full = accepted.find((b) => b.type === 'budget_100');
    expect(full.data.details).toMatchObject({ threshold: '10.000000', spend: '0.000000', reserved: '10.000000', max_budget: '10.000000' });
  });
});

describe.each(backends)('webhook deliverers running at once (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend, { pool: 8 });
  });
  afterAll(() => h?.close());

  it('never send one event twice: each claims its own batch while the others are still sending', async () => {
    // 12 scopes spent to their budget: budget_80 and budget_100 for each, 24 events.
    for (let i = 0; i < 12; i++) {
      const team = uniqueId('team');
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1' })).status).toBe(200);
      expect((await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '1' } })).status).toBe(201);
    }
    const deliverers = 4;
    const sent: Array<{ deliverer: number; id: string }> = [];
    // No send completes until every deliverer has one under way: all four hold claimed events at the same time.
    const entered = new Set<number>();
    let open!: () => void;
    const allSending = new Promise<void>((resolve) => (open = resolve));
    const fetchOf = (deliverer: number) => async (_url: string, init: RequestInit) => {
      sent.push({ deliverer, id: new Headers(init.headers).get('webhook-id')! });
      entered.add(deliverer);
      if (entered.size === deliverers) open();
      await allSending;
      return new Response(null, { status: 200 });
    };
    // The fetch stands in for the receiver, so the URL is never dialled.
    const config = { webhook: { url: 'http://127.0.0.1:9/unused', key: new Uint8Array(secretBytes) } };
    const reports = await Promise.all(Array.from({ length: deliverers }, (_, i) =>
      deliverDueEvents(h.db, fetchOf(i), config, h.clock, { batchSize: 4 })));

    const ids = sent.map((s) => s.id);
    expect(ids).toHaveLength(24);
    expect(new Set(ids).size).toBe(24);
    expect(reports.reduce((sum, r) => sum + r!.delivered, 0)).toBe(24);
    for (let i = 0; i < deliverers; i++) expect(sent.some((s) => s.deliverer === i)).toBe(true);
    const [row] = await h.db.query<{ undelivered: number }>(
      'select count(*)::integer as undelivered from spendgate.events where delivered_at is null');
    expect(row?.undelivered).toBe(0);
  });

  it('counts no answer, a network error and a redirect as failures, each retried later', async () => {
    const team = uniqueId('team');
    expect((await h.admin('PUT', `/v1/limits/team/${team}`, { soft_budget: '1' })).status).toBe(200);
    expect((await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '1' } })).status).toBe(201);
    const [event] = (await h.service('GET', `/v1/events?kind=team&id=${team}`)).body.data as OutboxEvent[];
    const config = { webhook: { url: 'http://127.0.0.1:9/unused', key: new Uint8Array(secretBytes) } };
    const failures: Array<[() => Promise<Response>, string]> = [
      [() => Promise.reject(new DOMException('timed out', 'TimeoutError')), 'no answer within 10000 ms'],
      [() => Promise.reject(new TypeError('fetch failed')), 'could not POST: fetch failed'],
      [async () => new Response(null, { status: 302, headers: { location: 'http://elsewhere.test/' } }), 'HTTP 302'],
    ];
    for (const [fail, error] of failures) {
      h.clock.advance(6 * 3600);
      expect(await deliverDueEvents(h.db, fail, config, h.clock)).toEqual({ delivered: 0, failed: 1, complete: true });
      const [row] = await h.db.query<{ last_error: string; delivered_at: Date | null }>(
        'select last_error, delivered_at from spendgate.events where event_id = $1', [event!.event_id]);
      expect(row).toEqual({ last_error: error, delivered_at: null });
    }
  });
});
