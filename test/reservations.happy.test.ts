import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, uniqueId } from './support/harness.ts';

describe.each(backends)('reservations, happy paths (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  it('reserves, settles from usage and returns the rest of the hold', async () => {
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '10.00' });
    const held = await h.service('POST', '/v1/reservations', {
      scopes: { key: 'sk-1', team },
      model: 'gpt-4o',
      request: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 256 },
    });
    expect(held.status).toBe(201);
    expect(held.body.status).toBe('held');
    // input: 4 framing + 1 ("hi" in o200k_base, gpt-4o's tokenizer) + 3 priming = 8 tokens × 0.0000025;
    // output 256 × 0.00001
    expect(held.body.estimate).toMatchObject({ input_tokens: 8, output_tokens: 256, source: 'request' });
    expect(held.body.reserved_cost).toBe('0.002580');
    expect(held.body.reserved_tokens).toBe(264);
    expect(held.body.expires_at).toBe('2026-03-10T12:10:00.000000Z');
    const teamScope = held.body.scopes.find((s: { kind: string }) => s.kind === 'team');
    expect(teamScope).toMatchObject({ id: team, max_budget: '10.000000', reserved: '0.002580', remaining: '9.997420' });

    const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, {
      usage: { prompt_tokens: 1000, completion_tokens: 100, prompt_tokens_details: { cached_tokens: 400 } },
    });
    expect(settled.status).toBe(200);
    // 600 × 0.0000025 + 400 × 0.00000125 + 100 × 0.00001 = 0.0015 + 0.0005 + 0.001
    expect(settled.body).toMatchObject({ status: 'settled', actual_cost: '0.003000', released_cost: '0.000000', actual_tokens: 700 /* the 400 cached tokens do not count against TPM */, cost_source: 'usage', late: false });

    const limit = await h.service('GET', `/v1/limits/team/${team}`);
    expect(limit.body).toMatchObject({ spend: '0.003000', reserved: '0.000000', remaining: '9.997000', in_flight: 0 });
  });

  it('charges an explicit cost, and the same settle again charges nothing more', async () => {
    const key = uniqueId('key');
    const held = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.50', tokens: 100 } });
    expect(held.status).toBe(201);
    expect(held.body).toMatchObject({ reserved_cost: '0.500000', reserved_tokens: 100, estimate: { source: 'caller' } });
    const body = { cost: '0.2', usage: { input_tokens: 10, output_tokens: 20 } };
    const first = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, body);
    const again = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, body);
    expect(first.body).toMatchObject({ actual_cost: '0.200000', released_cost: '0.300000', actual_tokens: 30 });
    expect(again.status).toBe(200);
    expect(again.body.actual_cost).toBe('0.200000');
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const usage = await h.service('GET', `/v1/limits/key/${key}`);
    expect(usage.body.spend).toBe('0.200000');
  });

  it('release returns the hold, refunds tokens and is idempotent', async () => {
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', tpm: 1000, max_parallel: 1 });
    const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.4', tokens: 600 } });
    const before = await h.service('GET', `/v1/limits/team/${team}`);
    expect(before.body).toMatchObject({ reserved: '0.400000', tokens_in_window: 600, in_flight: 1 });
    const released = await h.service('POST', `/v1/reservations/${held.body.id}/release`);
    expect(released.status).toBe(200);
    expect(released.body).toMatchObject({ status: 'released', released_cost: '0.400000' });
    const twice = await h.service('POST', `/v1/reservations/${held.body.id}/release`);
    expect(twice.status).toBe(200);
    expect(twice.body.status).toBe('released');
    const after = await h.service('GET', `/v1/limits/team/${team}`);
    expect(after.body).toMatchObject({ reserved: '0.000000', spend: '0.000000', tokens_in_window: 0, in_flight: 0 });
  });

  it('extend keeps a hold alive past its first expiry', async () => {
    const key = uniqueId('key');
    const held = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.1' }, ttl_seconds: 60 });
    h.clock.advance(50);
    const extended = await h.service('POST', `/v1/reservations/${held.body.id}/extend`, { ttl_seconds: 120 });
    expect(extended.status).toBe(200);
    expect(Date.parse(extended.body.expires_at) - Date.parse(held.body.expires_at)).toBe(110_000);
    h.clock.advance(60);
    expect((await h.admin('POST', '/v1/sweep')).status).toBe(200);
    const read = await h.service('GET', `/v1/reservations/${held.body.id}`);
    expect(read.body.status).toBe('held');
  });

  it('expires a hold nobody settles, and a late settle still charges once', async () => {
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '5' });
    const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '2' }, ttl_seconds: 30 });
    h.clock.advance(31);
    expect((await h.service('GET', `/v1/reservations/${held.body.id}`)).body.status).toBe('expired');
    const swept = await h.as('cron')('POST', '/v1/sweep');
    expect(swept.status).toBe(200);
    expect(swept.body.expired).toBeGreaterThanOrEqual(1);
    expect((await h.service('GET', `/v1/limits/team/${team}`)).body).toMatchObject({ reserved: '0.000000', in_flight: 0 });

    const late = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '1.25' });
    expect(late.status).toBe(200);
    expect(late.body).toMatchObject({ status: 'settled', actual_cost: '1.250000', released_cost: '0.000000', late: true });
    const again = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '1.25' });
    expect(again.body.actual_cost).toBe('1.250000');
    expect((await h.service('GET', `/v1/limits/team/${team}`)).body).toMatchObject({ spend: '1.250000', reserved: '0.000000' });
  });

  it('a settle after expiry but before any sweep expires and charges in one step', async () => {
    const key = uniqueId('key');
    const held = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.3' }, ttl_seconds: 5 });
    h.clock.advance(10);
    const late = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '0.1' });
    expect(late.body).toMatchObject({ status: 'settled', late: true, released_cost: '0.000000' });
    expect((await h.service('GET', `/v1/limits/key/${key}`)).body).toMatchObject({ spend: '0.100000', reserved: '0.000000', in_flight: 0 });
  });

  it('replays a reservation for the same idempotency key and body', async () => {
    const key = uniqueId('key');
    const idem = uniqueId('req');
    const body = { scopes: { key }, estimate: { cost: '0.05' }, idempotency_key: idem };
    const first = await h.service('POST', '/v1/reservations', body);
    const second = await h.service('POST', '/v1/reservations', body);
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    const viaHeader = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.05' } }, { 'idempotency-key': idem });
    expect(viaHeader.status).toBe(200);
    expect(viaHeader.body.id).toBe(first.body.id);
    expect((await h.service('GET', `/v1/limits/key/${key}`)).body).toMatchObject({ reserved: '0.050000', in_flight: 1 });
  });

  it('charges every named scope, and a kind with several ids charges each once', async () => {
    const [a, b] = [uniqueId('tag'), uniqueId('tag')];
    const held = await h.service('POST', '/v1/reservations', { scopes: { tag: [a, b, a] }, estimate: { cost: '0.7' } });
    expect(held.status).toBe(201);
    expect(held.body.scopes.map((s: { id: string }) => s.id).sort()).toEqual([a, b].sort());
    for (const id of [a, b]) {
      expect((await h.service('GET', `/v1/limits/tag/${id}`)).body).toMatchObject({ reserved: '0.700000', max_budget: null, remaining: null });
    }
  });

  it('reads show live usage: a hold past its expiry no longer counts, even before any sweep', async () => {
    const team = uniqueId('team');
    await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', tpm: 1000 });
    const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.3', tokens: 200 }, ttl_seconds: 10 });
    expect(held.status).toBe(201);
    expect(await h.scope('team', team)).toMatchObject({ reserved: '0.300000', remaining: '0.700000', in_flight: 1, tokens_in_window: 200 });
    h.clock.advance(11);
    expect(await h.scope('team', team)).toMatchObject({ reserved: '0.000000', remaining: '1.000000', in_flight: 0 });
    const list = await h.service('GET', `/v1/limits?kind=team&limit=1000`);
    expect(list.body.data.find((s: { id: string }) => s.id === team)).toMatchObject({ reserved: '0.000000', in_flight: 0 });
    // The ledger itself still says held until something writes the expiry; the audit compares stored counters.
    await h.admin('POST', '/v1/sweep');
    expect(await h.scope('team', team)).toMatchObject({ reserved: '0.000000', in_flight: 0 });
  });
});
