// The typed client against the app in process: every route, errors as typed exceptions, and retries that never
// hold twice.
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthenticationError, BudgetExceededError, ConflictError, ConnectionError, createClient, type FetchFunction,
  InvalidRequestError, NotFoundError, RateLimitError, SpendgateError, TimeoutError, UnavailableError,
} from '../lib/client.ts';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, tokens, uniqueId } from './support/harness.ts';

const url = 'http://spendgate.test';
const noWait = () => 0;

describe.each(backends)('client (%s)', (backend) => {
  let h: Harness;
  const inProcess: FetchFunction = (request) => h.app.fetch(request);
  const client = (token: string = tokens.service, fetch: FetchFunction = inProcess, retries = 2) =>
    createClient({ url, token, fetch, retries, retryDelayMs: noWait });

  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  it('calls every route and reads typed answers', async () => {
    const admin = client(tokens.admin);
    const service = client();
    const team = uniqueId('team');
    expect(await service.health()).toEqual({ ok: true });

    const model = await admin.models.set('openai/client-model', { mode: 'chat', input_cost_per_token: '0.000001', output_cost_per_token: '0.000002' });
    expect(model).toMatchObject({ name: 'openai/client-model', input_cost_per_token: '0.000001' });
    expect((await service.models.get('openai/client-model')).output_cost_per_token).toBe('0.000002');
    const imported = await admin.models.import({ 'client-imported': { input_cost_per_token: '0.1' }, bad: { input_cost_per_token: 'x' } });
    expect(imported.imported).toBe(1);
    expect(imported.skipped.map((s) => s.name)).toEqual(['bad']);

    const limit = await admin.limits.set('team', team, { max_budget: '5.00', rpm: 100 });
    expect(limit).toMatchObject({ kind: 'team', id: team, max_budget: '5.000000', rpm: 100 });
    const held = await service.reservations.create({ scopes: { team }, model: 'openai/client-model', request: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 } });
    expect(held).toMatchObject({ status: 'held', reserved_cost: '0.000029' });
    expect(held.idempotency_key).toMatch(/^[0-9a-f-]{36}$/); // made by the client
    expect((await service.reservations.extend(held.id, { ttl_seconds: 900 })).status).toBe('held');
    expect((await service.reservations.get(held.id)).expires_at).toBe('2026-03-10T12:15:00.000000Z');
    const settled = await service.reservations.settle(held.id, { usage: { prompt_tokens: 10, completion_tokens: 5 } });
    expect(settled).toMatchObject({ status: 'settled', actual_cost: '0.000020', released_cost: '0.000009' });
    const peek = await service.reservations.check({ scopes: { team }, estimate: { cost: '0.5' } });
    expect(peek).toMatchObject({ admitted: true, reserved_cost: '0.500000' });
    const other = await service.reservations.create({ scopes: { team }, estimate: { cost: '0.5' } });
    expect((await service.reservations.release(other.id)).released_cost).toBe('0.500000');

    expect(await service.limits.get('team', team)).toMatchObject({ spend: '0.000020', reserved: '0.000000' });
    await admin.limits.set('team', team, { soft_budget: '0.00001' });
    await service.reservations.release((await service.reservations.create({ scopes: { team }, estimate: { cost: '0.1' } })).id);
    const events = await service.events({ kind: 'team', id: team });
    expect(events.data.map((e) => e.type)).toEqual(['soft_budget']);
    expect(events.next_cursor).toBeNull();
    const second = uniqueId('team');
    await admin.limits.set('team', second, { rpm: 1 });
    const page = await service.limits.list({ kind: 'team', limit: 1 });
    expect(page.data).toHaveLength(1);
    expect(page.next_cursor).not.toBeNull();
    const all: string[] = [];
    for await (const scope of service.limits.listAll({ kind: 'team', limit: 1 })) all.push(scope.id);
    expect(all).toEqual(expect.arrayContaining([team, second]));
    expect(await admin.limits.delete('team', second)).toEqual({ kind: 'team', id: second, deleted: true });

    expect(await admin.sweep()).toMatchObject({ expired: 0, complete: true });
    expect(await admin.audit()).toMatchObject({ ok: true, mismatches: [] });
  });

  it('reads the dashboard snapshot, admin only, over the hours asked for', async () => {
    // A database of its own, so that the snapshot holds exactly what this test did.
    const own = await startHarness(backend);
    try {
      const ownFetch: FetchFunction = (request) => own.app.fetch(request);
      const admin = client(tokens.admin, ownFetch);
      const service = client(tokens.service, ownFetch);
      const team = uniqueId('team');
      await admin.limits.set('team', team, { max_budget: '10', budget_duration: '1d' });
      const first = await service.reservations.create({ scopes: { team }, estimate: { cost: '3' } });
      await service.reservations.settle(first.id, { cost: '2.5' }); // settled at 12:00
      own.clock.advance(3600);
      const second = await service.reservations.create({ scopes: { team }, estimate: { cost: '4' } }); // held at 13:00

      const snapshot = await admin.dashboard({ hours: 2 });
      expect(snapshot).toMatchObject({
        at: '2026-03-10T13:00:00.000000Z', scope_count: 1, webhook_configured: false, events: [], undelivered_events: 0,
        refusals: { by_type: {}, latest: [] }, spend_total: '2.500000',
      });
      expect(snapshot.spend).toEqual([
        { hour: '2026-03-10T12:00:00.000000Z', cost: '2.500000', settled: 1 },
        { hour: '2026-03-10T13:00:00.000000Z', cost: '0.000000', settled: 0 },
      ]);
      expect(snapshot.scopes).toHaveLength(1);
      expect(snapshot.scopes[0]).toMatchObject({
        kind: 'team', id: team, spend: '2.500000', reserved: '4.000000', max_budget: '10.000000',
        spend_percent: '25.0', reserved_percent: '40.0', in_flight: 1,
      });
      expect(snapshot.holds).toEqual({
        count: 1,
        amount: '4.000000',
        oldest: [expect.objectContaining({ id: second.id, reserved_cost: '4.000000', scopes: [{ kind: 'team', id: team }] })],
      });
      expect((await admin.dashboard()).spend).toHaveLength(48); // the route's default

      const tooMany = await admin.dashboard({ hours: 169 }).catch((e) => e);
      expect(tooMany).toBeInstanceOf(InvalidRequestError);
      expect(tooMany.issues[0].path).toBe('hours');
      const forbidden = await service.dashboard().catch((e) => e);
      expect(forbidden).toBeInstanceOf(AuthenticationError);
      expect(forbidden.status).toBe(403);

      await service.reservations.release(second.id);
      await own.expectAuditOk();
    } finally {
      await own.close();
    }
  });

  it('turns error answers into typed exceptions', async () => {
    const service = client();
    const invalid = await service.reservations.create({ scopes: {}, estimate: { cost: '1' } }).catch((e) => e);
    expect(invalid).toBeInstanceOf(InvalidRequestError);
    expect(invalid).toMatchObject({ status: 400, type: 'invalid_request' });
    expect(invalid.issues[0].path).toBe('scopes');

    const wrongToken = await client('not-the-token-000000000').audit().catch((e) => e);
    expect(wrongToken).toBeInstanceOf(AuthenticationError);
    expect(wrongToken.status).toBe(401);
    const forbidden = await service.audit().catch((e) => e);
    expect(forbidden).toMatchObject({ status: 403, type: 'forbidden' });
    expect(forbidden).toBeInstanceOf(AuthenticationError);

    const missing = await service.reservations.get(crypto.randomUUID()).catch((e) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing.requestId).toMatch(/./);

    const key = uniqueId('key');
    const held = await service.reservations.create({ scopes: { key }, estimate: { cost: '0.1' } });
    await service.reservations.settle(held.id, { cost: '0.1' });
    expect(await service.reservations.release(held.id).catch((e) => e)).toBeInstanceOf(ConflictError);
  });

  it('BudgetExceededError names the scope; RateLimitError carries Retry-After', async () => {
    const admin = client(tokens.admin);
    const service = client();
    const team = uniqueId('team');
    await admin.limits.set('team', team, { max_budget: '1', budget_duration: '1h' });
    const refused = await service.reservations.create({ scopes: { team, key: uniqueId('key') }, estimate: { cost: '2' } }).catch((e) => e);
    expect(refused).toBeInstanceOf(BudgetExceededError);
    expect(refused.scope).toEqual({ kind: 'team', id: team });
    expect(refused.retryAfter).toBe(3600);
    expect(refused.details).toMatchObject({ max_budget: '1.000000', requested: '2.000000' });

    const user = uniqueId('user');
    await admin.limits.set('user', user, { rpm: 1 });
    await service.reservations.create({ scopes: { user }, estimate: { cost: '0' } });
    const limited = await service.reservations.create({ scopes: { user }, estimate: { cost: '0' } }).catch((e) => e);
    expect(limited).toBeInstanceOf(RateLimitError);
    expect(limited).toMatchObject({ type: 'rate_limit_exceeded', scope: { kind: 'user', id: user } });
    expect(limited.retryAfter).toBeGreaterThan(0);

    const slot = uniqueId('key');
    await admin.limits.set('key', slot, { max_parallel: 1 });
    await service.reservations.create({ scopes: { key: slot }, estimate: { cost: '0' } });
    const parallel = await service.reservations.create({ scopes: { key: slot }, estimate: { cost: '0' } }).catch((e) => e);
    expect(parallel).toBeInstanceOf(RateLimitError);
    expect(parallel.type).toBe('parallel_limit_exceeded');
  });

  it('retries a reserve whose answer was lost with the same idempotency key, holding once', async () => {
    const key = uniqueId('key');
    const keysSent: string[] = [];
    let attempts = 0;
    const losesFirstAnswer: FetchFunction = async (request) => {
      keysSent.push((await request.clone().json()).idempotency_key);
      const response = await h.app.fetch(request);
      if (++attempts === 1) throw new TypeError('fetch failed'); // the hold was made; its answer never arrived
      return response;
    };
    const held = await client(tokens.service, losesFirstAnswer).reservations.create({ scopes: { key }, estimate: { cost: '0.25' } });
    expect(attempts).toBe(2);
    expect(keysSent[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(keysSent[1]).toBe(keysSent[0]);
    expect(held.idempotency_key).toBe(keysSent[0]);
    expect(await h.scope('key', key)).toMatchObject({ reserved: '0.250000', in_flight: 1 });
    await client().reservations.release(held.id);
  });

  it('retries a 503 and gives up with UnavailableError after its retries', async () => {
    let attempts = 0;
    const unavailable = new Response(JSON.stringify({ error: { type: 'unavailable', message: 'busy' } }), { status: 503 });
    const busyOnce: FetchFunction = (request) => (++attempts === 1 ? unavailable.clone() : h.app.fetch(request));
    expect(await client(tokens.service, busyOnce).health()).toEqual({ ok: true });
    expect(attempts).toBe(2);

    attempts = 0;
    const alwaysBusy: FetchFunction = () => (attempts++, unavailable.clone());
    const error = await client(tokens.service, alwaysBusy, 3).health().catch((e) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect(attempts).toBe(4);
  });

  it('does not retry a refusal or an invalid request', async () => {
    let attempts = 0;
    const counting: FetchFunction = (request) => (attempts++, h.app.fetch(request));
    await client(tokens.service, counting).reservations.create({ scopes: {}, estimate: { cost: '1' } }).catch(() => {});
    expect(attempts).toBe(1);
  });

  it('times out each attempt, retries, then throws TimeoutError; a caller abort is not retried', async () => {
    let attempts = 0;
    const hangs: FetchFunction = (request) => {
      attempts++;
      return new Promise((_, reject) => request.signal.addEventListener('abort', () => reject(request.signal.reason)));
    };
    const slow = createClient({ url, token: tokens.service, fetch: hangs, timeoutMs: 20, retries: 1, retryDelayMs: noWait });
    const error = await slow.health().catch((e) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toBeInstanceOf(SpendgateError);
    expect(attempts).toBe(2);

    attempts = 0;
    const controller = new AbortController();
    const call = createClient({ url, token: tokens.service, fetch: hangs, timeoutMs: 60_000, retryDelayMs: noWait })
      .health({ signal: controller.signal });
    controller.abort(new Error('caller gave up'));
    await expect(call).rejects.toThrow('caller gave up');
    expect(attempts).toBe(1);
  });

  it('throws ConnectionError when nothing listens', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const nobody = createClient({ url: `http://127.0.0.1:${port}`, token: tokens.service, retries: 1, retryDelayMs: noWait });
    const error = await nobody.health().catch((e) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error.message).toContain('ECONNREFUSED');
    expect(error.status).toBeNull();
  });
});
