import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, type Reply, startHarness, uniqueId } from './support/harness.ts';

/** A scope kind no other test uses ([a-z_]{1,32}), so that GET /v1/limits?kind= lists only this test's scopes. */
function uniqueKind(): string {
  const letters = Array.from({ length: 12 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join('');
  return `k_${letters}`;
}

/** A UUID no reservation has. */
const unknownId = () => crypto.randomUUID();

/** Asserts a 400 invalid_request whose issues name exactly these field paths. */
function expectInvalid(reply: Reply, ...paths: string[]) {
  expect(reply.status).toBe(400);
  expect(reply.body.error.type).toBe('invalid_request');
  expect(typeof reply.body.error.message).toBe('string');
  const issues: Array<{ path: string; message: string }> = reply.body.error.issues;
  expect(Array.isArray(issues)).toBe(true);
  expect(issues.map((i) => i.path).sort()).toEqual([...paths].sort());
  for (const issue of issues) expect(issue.message.length).toBeGreaterThan(0);
}

/** Moves the manual clock forward to the start of a later rate window (a minute boundary), plus `offset` seconds. */
function nextMinute(h: Harness, offset = 0): number {
  const now = h.clock.now()!.getTime();
  const start = (Math.floor(now / 60_000) + 2) * 60_000;
  h.clock.set(new Date(start + offset * 1000));
  return start;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

describe.each(backends)('reservations, errors (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  const reserve = (body: unknown, headers?: Record<string, string>) => h.service('POST', '/v1/reservations', body, headers);
  const limitOf = (kind: string, id: string) => h.service('GET', `/v1/limits/${kind}/${id}`);
  const listKind = async (kind: string) => {
    const page = await h.service('GET', `/v1/limits?kind=${kind}`);
    expect(page.status).toBe(200);
    return page.body;
  };
  const expectNeverSeen = async (kind: string, id: string) => {
    const read = await limitOf(kind, id);
    expect(read.status).toBe(404);
    expect(read.body.error.type).toBe('not_found');
  };

  describe('validation of POST /v1/reservations', () => {
    const cases: Array<[string, (key: string) => unknown, string[]]> = [
      ['missing scopes', () => ({ estimate: { cost: '0.1' } }), ['scopes']],
      ['empty scopes {}', () => ({ scopes: {}, estimate: { cost: '0.1' } }), ['scopes']],
      ['an uppercase scope kind', (key) => ({ scopes: { Team: key }, estimate: { cost: '0.1' } }), ['scopes.Team']],
      ['a scope kind with a dash', (key) => ({ scopes: { 'a-b': key }, estimate: { cost: '0.1' } }), ['scopes.a-b']],
      ['a 33-character scope kind', (key) => ({ scopes: { ['a'.repeat(33)]: key }, estimate: { cost: '0.1' } }), [`scopes.${'a'.repeat(33)}`]],
      ['an empty scope id', () => ({ scopes: { key: '' }, estimate: { cost: '0.1' } }), ['scopes.key']],
      ['a 257-character scope id', () => ({ scopes: { key: 'x'.repeat(257) }, estimate: { cost: '0.1' } }), ['scopes.key']],
      ['an empty id in a list', (key) => ({ scopes: { tag: [key, ''] }, estimate: { cost: '0.1' } }), ['scopes.tag.1']],
      ['an empty list of ids', () => ({ scopes: { tag: [] }, estimate: { cost: '0.1' } }), ['scopes.tag']],
      ['65 scopes', (key) => ({ scopes: { tag: Array.from({ length: 65 }, (_, i) => `${key}-${i}`) }, estimate: { cost: '0.1' } }), ['scopes']],
      ['neither model nor estimate.cost', (key) => ({ scopes: { key } }), ['model']],
      ['estimate.tokens without estimate.cost', (key) => ({ scopes: { key }, estimate: { tokens: 10 } }), ['model']],
      ['ttl_seconds 0', (key) => ({ scopes: { key }, estimate: { cost: '0.1' }, ttl_seconds: 0 }), ['ttl_seconds']],
      ['ttl_seconds 86401', (key) => ({ scopes: { key }, estimate: { cost: '0.1' }, ttl_seconds: 86401 }), ['ttl_seconds']],
      ['ttl_seconds 1.5', (key) => ({ scopes: { key }, estimate: { cost: '0.1' }, ttl_seconds: 1.5 }), ['ttl_seconds']],
      ['ttl_seconds "10"', (key) => ({ scopes: { key }, estimate: { cost: '0.1' }, ttl_seconds: '10' }), ['ttl_seconds']],
      ['a negative estimate.cost', (key) => ({ scopes: { key }, estimate: { cost: '-0.01' } }), ['estimate.cost']],
      ['a negative estimate.cost as a number', (key) => ({ scopes: { key }, estimate: { cost: -1 } }), ['estimate.cost']],
      ['estimate.cost "abc"', (key) => ({ scopes: { key }, estimate: { cost: 'abc' } }), ['estimate.cost']],
      ['estimate.cost ""', (key) => ({ scopes: { key }, estimate: { cost: '' } }), ['estimate.cost']],
      ['estimate.cost true', (key) => ({ scopes: { key }, estimate: { cost: true } }), ['estimate.cost']],
      ['a negative estimate.tokens', (key) => ({ scopes: { key }, estimate: { cost: '0.1', tokens: -1 } }), ['estimate.tokens']],
      ['a fractional estimate.tokens', (key) => ({ scopes: { key }, estimate: { cost: '0.1', tokens: 2.5 } }), ['estimate.tokens']],
      ['request.max_tokens -1', (key) => ({ scopes: { key }, model: 'gpt-4o', request: { max_tokens: -1 } }), ['request.max_tokens']],
      ['request.max_tokens "many"', (key) => ({ scopes: { key }, model: 'gpt-4o', request: { max_tokens: 'many' } }), ['request.max_tokens']],
      ['an empty model name', (key) => ({ scopes: { key }, model: '' }), ['model']],
      ['an empty idempotency_key', (key) => ({ scopes: { key }, estimate: { cost: '0.1' }, idempotency_key: '' }), ['idempotency_key']],
      ['scopes given as a list', (key) => ({ scopes: [key], estimate: { cost: '0.1' } }), ['scopes']],
      ['request given as a string', (key) => ({ scopes: { key }, model: 'gpt-4o', request: 'hi' }), ['request']],
      ['request.n 0', (key) => ({ scopes: { key }, model: 'dall-e-3', request: { prompt: 'a cat', n: 0 } }), ['request.n']],
    ];
    it.each(cases)('rejects %s with 400 naming the field, and writes nothing', async (_label, body, paths) => {
      const key = uniqueId('key');
      expectInvalid(await reserve(body(key)), ...paths);
      await expectNeverSeen('key', key);
      await expectNeverSeen('tag', key);
      await expectNeverSeen('tag', `${key}-0`);
    });

    it('a hostile max_tokens cannot inflate the hold, and one beyond exact integers is rejected', async () => {
      const key = uniqueId('key');
      const held = await reserve({ scopes: { key }, model: 'gpt-4o', request: { messages: [{ role: 'user', content: 'hi' }], max_tokens: Number.MAX_SAFE_INTEGER } });
      expect(held.status).toBe(201);
      // "hi" is 1 o200k_base token: 4 + 1 + 3 = 8 × 0.0000025 + 16384 × 0.00001
      expect(held.body.estimate).toMatchObject({ input_tokens: 8, output_tokens: 16384 });
      expect(held.body.reserved_cost).toBe('0.163860');
      const other = uniqueId('key');
      expectInvalid(await reserve(`{"scopes":{"key":"${other}"},"model":"gpt-4o","request":{"max_tokens":100000000000000000000}}`), 'request.max_tokens');
      await expectNeverSeen('key', other);
    });

    it('rejects a cost of 1e999 (sent as raw JSON) instead of reading Infinity', async () => {
      const key = uniqueId('key');
      expectInvalid(await reserve(`{"scopes":{"key":"${key}"},"estimate":{"cost":1e999}}`), 'estimate.cost');
      await expectNeverSeen('key', key);
    });

    it('rejects a malformed JSON body', async () => {
      const key = uniqueId('key');
      expectInvalid(await reserve(`{"scopes":{"key":"${key}"},"estimate":{"cost":"0.1"}`), '');
      await expectNeverSeen('key', key);
    });

    it('rejects a body that is JSON but not an object', async () => {
      expectInvalid(await reserve('[1,2]'), '');
    });

    it('rejects a body sent with the wrong content type', async () => {
      const key = uniqueId('key');
      const reply = await reserve(JSON.stringify({ scopes: { key }, estimate: { cost: '0.1' } }), { 'content-type': 'text/plain' });
      expectInvalid(reply, '');
      await expectNeverSeen('key', key);
    });

    it('rejects an Idempotency-Key header that differs from the body field', async () => {
      const key = uniqueId('key');
      const reply = await reserve({ scopes: { key }, estimate: { cost: '0.1' }, idempotency_key: uniqueId('a') }, { 'idempotency-key': uniqueId('b') });
      expectInvalid(reply, 'idempotency_key');
      await expectNeverSeen('key', key);
    });

    it('accepts the boundaries: 64 scopes, a 32-letter kind, a 256-character id, ttl_seconds 1 and 86400', async () => {
      const key = uniqueId('key');
      const many = await reserve({ scopes: { tag: Array.from({ length: 64 }, (_, i) => `${key}-${i}`) }, estimate: { cost: '0' } });
      expect(many.status).toBe(201);
      expect(many.body.scopes).toHaveLength(64);
      const longId = `${key}-`.padEnd(256, 'x');
      const long = await reserve({ scopes: { ['a'.repeat(32)]: longId }, estimate: { cost: '0' }, ttl_seconds: 1 });
      expect(long.status).toBe(201);
      expect(long.body.scopes).toMatchObject([{ kind: 'a'.repeat(32), id: longId }]);
      expect(Date.parse(long.body.expires_at) - Date.parse(long.body.created_at)).toBe(1000);
      const day = await reserve({ scopes: { key }, estimate: { cost: '0' }, ttl_seconds: 86400 });
      expect(day.status).toBe(201);
      expect(Date.parse(day.body.expires_at) - Date.parse(day.body.created_at)).toBe(86_400_000);
    });

    it('leaves an existing scope exactly as it was after a rejected call', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '2', rpm: 10, tpm: 1000, max_parallel: 3 });
      expect((await reserve({ scopes: { team }, estimate: { cost: '0.3', tokens: 50 } })).status).toBe(201);
      const before = await limitOf('team', team);
      expectInvalid(await reserve({ scopes: { team }, estimate: { cost: '0.3', tokens: 50 }, ttl_seconds: 0 }), 'ttl_seconds');
      expectInvalid(await reserve({ scopes: { team, Bad: 'x' }, estimate: { cost: '0.3' } }), 'scopes.Bad');
      const after = await limitOf('team', team);
      expect(after.body).toEqual(before.body);
      expect(after.body).toMatchObject({ reserved: '0.300000', requests_in_window: 1, tokens_in_window: 50, in_flight: 1 });
    });
  });

  describe('validation of reservation ids, settle, extend, limits and models', () => {
    it.each([
      ['GET', '/v1/reservations/not-a-uuid', undefined],
      ['POST', '/v1/reservations/not-a-uuid/settle', { cost: '0.1' }],
      ['POST', '/v1/reservations/not-a-uuid/release', undefined],
      ['POST', '/v1/reservations/not-a-uuid/extend', { ttl_seconds: 60 }],
      ['GET', '/v1/reservations/12345', undefined],
    ] as const)('%s %s is 400 naming id', async (method, path, body) => {
      expectInvalid(await h.service(method, path, body), 'id');
    });

    it('rejects bad settle bodies and leaves the hold as it was', async () => {
      const key = uniqueId('key');
      const held = await reserve({ scopes: { key }, model: 'gpt-4o', request: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 } });
      expect(held.status).toBe(201);
      const before = await limitOf('key', key);
      const settle = (body: unknown) => h.service('POST', `/v1/reservations/${held.body.id}/settle`, body);
      expectInvalid(await settle({}), '');
      expectInvalid(await settle({ usage: { prompt_tokens: -1, completion_tokens: 5 } }), 'usage.prompt_tokens');
      expectInvalid(await settle({ usage: { prompt_tokens: 1.5, completion_tokens: 5 } }), 'usage.prompt_tokens');
      expectInvalid(await settle({ usage: { prompt_tokens: '10', completion_tokens: 5 } }), 'usage.prompt_tokens');
      expectInvalid(await settle({ usage: { input_tokens: 10, output_tokens: -3 } }), 'usage.output_tokens');
      expectInvalid(
        await settle({ usage: { prompt_tokens: 100, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 101 } } }),
        'usage.prompt_tokens_details.cached_tokens',
      );
      expectInvalid(await settle({ usage: { input_tokens: 10, prompt_tokens: 10 } }), 'usage');
      expectInvalid(await settle({ usage: {} }), 'usage');
      expectInvalid(await settle({ cost: '-0.5' }), 'cost');
      expectInvalid(await settle({ cost: 'abc' }), 'cost');
      expectInvalid(await settle(`{"cost": 1e999}`), 'cost');
      expectInvalid(await settle({ images: -1 }), 'images');
      expectInvalid(await settle({ images: 1.5 }), 'images');
      expectInvalid(await settle('{"cost": '), '');
      const read = await h.service('GET', `/v1/reservations/${held.body.id}`);
      expect(read.body).toMatchObject({ status: 'held', actual_cost: null, settled_at: null });
      expect((await limitOf('key', key)).body).toEqual(before.body);
      // The hold still settles normally afterwards.
      const ok = await settle({ cost: '0.0001' });
      expect(ok.status).toBe(200);
      expect(ok.body.actual_cost).toBe('0.000100');
    });

    it('rejects a bad extend ttl and leaves expires_at as it was', async () => {
      const key = uniqueId('key');
      const held = await reserve({ scopes: { key }, estimate: { cost: '0.1' }, ttl_seconds: 60 });
      for (const ttl of [0, 86401, 1.5, '10']) {
        expectInvalid(await h.service('POST', `/v1/reservations/${held.body.id}/extend`, { ttl_seconds: ttl }), 'ttl_seconds');
      }
      expect((await h.service('GET', `/v1/reservations/${held.body.id}`)).body.expires_at).toBe(held.body.expires_at);
    });

    it.each([
      ['a negative max_budget', { max_budget: '-1' }, 'max_budget'],
      ['max_budget "ten"', { max_budget: 'ten' }, 'max_budget'],
      ['a negative soft_budget', { soft_budget: -0.5 }, 'soft_budget'],
      ['rpm 1.5', { rpm: 1.5 }, 'rpm'],
      ['rpm -1', { rpm: -1 }, 'rpm'],
      ['tpm "100"', { tpm: '100' }, 'tpm'],
      ['max_parallel 2.5', { max_parallel: 2.5 }, 'max_parallel'],
      ['budget_duration "2d"', { budget_duration: '2d' }, 'budget_duration'],
      ['a model limit with a negative max_budget', { models: { 'gpt-4o': { max_budget: '-2' } } }, 'models.gpt-4o.max_budget'],
    ] as const)('PUT /v1/limits rejects %s and writes nothing', async (_label, body, path) => {
      const team = uniqueId('team');
      expectInvalid(await h.admin('PUT', `/v1/limits/team/${team}`, body), path);
      await expectNeverSeen('team', team);
      // On a scope that has a limit, the rejected PUT changes nothing either (not even the valid fields next to it).
      const set = await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '5', rpm: 7 });
      expect(set.status).toBe(200);
      expectInvalid(await h.admin('PUT', `/v1/limits/team/${team}`, { tpm: 99, ...body }), path);
      const read = await limitOf('team', team);
      expect(read.body).toMatchObject({ max_budget: '5.000000', rpm: 7, tpm: null, max_parallel: null, budget_duration: null });
    });

    it('rejects a bad scope kind or id in the limits path', async () => {
      expectInvalid(await h.admin('PUT', '/v1/limits/Team/x', { max_budget: '1' }), 'kind');
      expectInvalid(await h.service('GET', `/v1/limits/${'a'.repeat(33)}/x`), 'kind');
      expectInvalid(await h.service('GET', `/v1/limits/team/${'x'.repeat(257)}`), 'id');
      expectInvalid(await h.service('GET', '/v1/limits?kind=Team'), 'kind');
      expectInvalid(await h.service('GET', '/v1/limits?limit=0'), 'limit');
      expectInvalid(await h.service('GET', '/v1/limits?cursor=not-a-cursor!'), 'cursor');
    });

    it('rejects a negative model price and writes nothing', async () => {
      const name = uniqueId('model');
      expectInvalid(await h.admin('PUT', `/v1/models/${name}`, { mode: 'chat', input_cost_per_token: '-0.000001' }), 'input_cost_per_token');
      expectInvalid(await h.admin('PUT', `/v1/models/${name}`, { mode: 'chat', max_output_tokens: -5 }), 'max_output_tokens');
      const read = await h.service('GET', `/v1/models/${name}`);
      expect(read.status).toBe(404);
      expect(read.body.error.type).toBe('not_found');
    });
  });

  describe('404 not_found', () => {
    it.each([
      ['GET', ''],
      ['POST', '/settle'],
      ['POST', '/release'],
      ['POST', '/extend'],
    ] as const)('%s an unknown reservation%s', async (method, suffix) => {
      const id = unknownId();
      const body = suffix === '/settle' ? { cost: '0.1' } : suffix === '/extend' ? { ttl_seconds: 60 } : undefined;
      const reply = await h.service(method, `/v1/reservations/${id}${suffix}`, body);
      expect(reply.status).toBe(404);
      expect(reply.body.error.type).toBe('not_found');
      expect(reply.body.error.message).toContain(id);
    });

    it('GET /v1/limits/{kind}/{id} for a scope never seen, and DELETE of a limit that does not exist', async () => {
      const team = uniqueId('team');
      await expectNeverSeen('team', team);
      const del = await h.admin('DELETE', `/v1/limits/team/${team}`);
      expect(del.status).toBe(404);
      expect(del.body.error.type).toBe('not_found');
      await expectNeverSeen('team', team);
    });

    it('GET of a model not in the price table', async () => {
      const reply = await h.service('GET', `/v1/models/${uniqueId('no-such-model')}`);
      expect(reply.status).toBe(404);
      expect(reply.body.error.type).toBe('not_found');
    });

    it('an unknown route, with or without /v1', async () => {
      for (const path of ['/v1/nothing-here', '/v1/reservations/x/y/z', '/nothing-here']) {
        const reply = await h.service('GET', path);
        expect(reply.status).toBe(404);
        expect(reply.body.error.type).toBe('not_found');
        expect(typeof reply.body.error.message).toBe('string');
      }
      const wrongMethod = await h.service('DELETE', `/v1/reservations/${unknownId()}`);
      expect(wrongMethod.status).toBe(404);
      expect(wrongMethod.body.error.type).toBe('not_found');
    });
  });

  describe('409 conflict', () => {
    const hold = async (key: string, extra: Record<string, unknown> = {}) => {
      const held = await reserve({ scopes: { key }, estimate: { cost: '0.5', tokens: 10 }, ...extra });
      expect(held.status).toBe(201);
      return held.body.id as string;
    };
    const expectConflict = (reply: Reply, status: string) => {
      expect(reply.status).toBe(409);
      expect(reply.body.error.type).toBe('conflict');
      expect(reply.body.error.status).toBe(status);
    };

    it('settling a released reservation', async () => {
      const key = uniqueId('key');
      const id = await hold(key);
      expect((await h.service('POST', `/v1/reservations/${id}/release`)).status).toBe(200);
      expectConflict(await h.service('POST', `/v1/reservations/${id}/settle`, { cost: '0.1' }), 'released');
      expect((await h.service('GET', `/v1/reservations/${id}`)).body).toMatchObject({ status: 'released', actual_cost: null });
      expect((await limitOf('key', key)).body).toMatchObject({ spend: '0.000000', reserved: '0.000000', in_flight: 0 });
    });

    it('releasing a settled reservation', async () => {
      const key = uniqueId('key');
      const id = await hold(key);
      expect((await h.service('POST', `/v1/reservations/${id}/settle`, { cost: '0.2' })).status).toBe(200);
      expectConflict(await h.service('POST', `/v1/reservations/${id}/release`), 'settled');
      expect((await h.service('GET', `/v1/reservations/${id}`)).body).toMatchObject({ status: 'settled', actual_cost: '0.200000' });
      expect((await limitOf('key', key)).body).toMatchObject({ spend: '0.200000', reserved: '0.000000', in_flight: 0 });
    });

    it('settling twice with different bodies charges the first only', async () => {
      const key = uniqueId('key');
      const id = await hold(key);
      expect((await h.service('POST', `/v1/reservations/${id}/settle`, { cost: '0.2' })).status).toBe(200);
      expectConflict(await h.service('POST', `/v1/reservations/${id}/settle`, { cost: '0.3' }), 'settled');
      expectConflict(await h.service('POST', `/v1/reservations/${id}/settle`, { cost: '0.2', usage: { input_tokens: 1, output_tokens: 1 } }), 'settled');
      expect((await limitOf('key', key)).body).toMatchObject({ spend: '0.200000', reserved: '0.000000' });
      // The first body again is still a replay, not a conflict.
      const again = await h.service('POST', `/v1/reservations/${id}/settle`, { cost: '0.2' });
      expect(again.status).toBe(200);
      expect(again.body.actual_cost).toBe('0.200000');
    });

    it('settling a late (expired) reservation twice with different bodies', async () => {
      const key = uniqueId('key');
      const id = await hold(key, { ttl_seconds: 5 });
      h.clock.advance(6);
      expect((await h.service('POST', `/v1/reservations/${id}/settle`, { cost: '0.1' })).status).toBe(200);
      expectConflict(await h.service('POST', `/v1/reservations/${id}/settle`, { cost: '0.4' }), 'settled');
      expect((await limitOf('key', key)).body).toMatchObject({ spend: '0.100000', reserved: '0.000000', in_flight: 0 });
    });

    it.each(['settled', 'released', 'expired'] as const)('extending a %s reservation', async (state) => {
      const key = uniqueId('key');
      const id = await hold(key, { ttl_seconds: 30 });
      if (state === 'settled') await h.service('POST', `/v1/reservations/${id}/settle`, { cost: '0.1' });
      if (state === 'released') await h.service('POST', `/v1/reservations/${id}/release`);
      if (state === 'expired') h.clock.advance(31);
      const before = await h.service('GET', `/v1/reservations/${id}`);
      expect(before.body.status).toBe(state);
      expectConflict(await h.service('POST', `/v1/reservations/${id}/extend`, { ttl_seconds: 600 }), state);
      const after = await h.service('GET', `/v1/reservations/${id}`);
      expect(after.body.status).toBe(state);
      expect(after.body.expires_at).toBe(before.body.expires_at);
      expect((await limitOf('key', key)).body).toMatchObject({ reserved: '0.000000', in_flight: 0 });
    });

    it('the same idempotency_key (body field) with a different body', async () => {
      const key = uniqueId('key');
      const idem = uniqueId('idem');
      const first = await reserve({ scopes: { key }, estimate: { cost: '0.05' }, idempotency_key: idem });
      expect(first.status).toBe(201);
      for (const body of [
        { scopes: { key }, estimate: { cost: '0.06' }, idempotency_key: idem },
        { scopes: { key, team: uniqueId('team') }, estimate: { cost: '0.05' }, idempotency_key: idem },
        { scopes: { key }, estimate: { cost: '0.05' }, ttl_seconds: 60, idempotency_key: idem },
      ]) {
        const again = await reserve(body);
        expect(again.status).toBe(409);
        expect(again.body.error.type).toBe('conflict');
        expect(again.body.error.reservation_id).toBe(first.body.id);
      }
      expect((await limitOf('key', key)).body).toMatchObject({ reserved: '0.050000', in_flight: 1, requests_in_window: 1 });
    });

    it('the same Idempotency-Key header with a different body, and across header and body field', async () => {
      const key = uniqueId('key');
      const idem = uniqueId('idem');
      const first = await reserve({ scopes: { key }, estimate: { cost: '0.05' } }, { 'idempotency-key': idem });
      expect(first.status).toBe(201);
      const viaHeader = await reserve({ scopes: { key }, estimate: { cost: '0.07' } }, { 'idempotency-key': idem });
      expect(viaHeader.status).toBe(409);
      expect(viaHeader.body.error.type).toBe('conflict');
      const viaBody = await reserve({ scopes: { key }, estimate: { cost: '0.07' }, idempotency_key: idem });
      expect(viaBody.status).toBe(409);
      expect(viaBody.body.error.type).toBe('conflict');
      expect((await limitOf('key', key)).body).toMatchObject({ reserved: '0.050000', in_flight: 1 });
    });
  });

  describe('429 budget_exceeded', () => {
    it('refuses with every detail and a Retry-After until the period resets', async () => {
      const start = nextMinute(h);
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', budget_duration: '1h' });
      expect((await reserve({ scopes: { team }, estimate: { cost: '0.6' }, ttl_seconds: 3600 })).status).toBe(201);
      h.clock.advance(600);
      const refused = await reserve({ scopes: { team }, estimate: { cost: '0.5' } });
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({
        type: 'budget_exceeded',
        scope: { kind: 'team', id: team },
        max_budget: '1.000000',
        spend: '0.000000',
        reserved: '0.600000',
        requested: '0.500000',
        resets_at: iso(start + 3_600_000),
      });
      expect(refused.body.error.scope).toEqual({ kind: 'team', id: team });
      expect(refused.headers.get('retry-after')).toBe('3000');
      expect((await limitOf('team', team)).body).toMatchObject({ reserved: '0.600000', in_flight: 1, requests_in_window: 0 });
      // One second before the reset it is still refused, with Retry-After 1; at the reset the new period admits it.
      h.clock.set(new Date(start + 3_599_000));
      const last = await reserve({ scopes: { team }, estimate: { cost: '0.5' } });
      expect(last.status).toBe(429);
      expect(last.headers.get('retry-after')).toBe('1');
      h.clock.set(new Date(start + 3_600_000));
      const next = await reserve({ scopes: { team }, estimate: { cost: '0.9' } });
      expect(next.status).toBe(201);
      expect((await limitOf('team', team)).body).toMatchObject({
        spend: '0.000000', reserved: '0.900000', in_flight: 1,
        period_start: iso(start + 3_600_000), resets_at: iso(start + 7_200_000),
      });
    });

    it('has no Retry-After and a null resets_at when the budget never resets', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '0.1' });
      const refused = await reserve({ scopes: { team }, estimate: { cost: '0.2' } });
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ type: 'budget_exceeded', max_budget: '0.100000', spend: '0.000000', reserved: '0.000000', requested: '0.200000', resets_at: null });
      expect(refused.headers.get('retry-after')).toBeNull();
      expect((await limitOf('team', team)).body).toMatchObject({ reserved: '0.000000', in_flight: 0 });
    });

    it('admits a hold that fills the budget exactly, then refuses even a zero-cost hold', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1.00' });
      expect((await reserve({ scopes: { team }, estimate: { cost: '0.4' } })).status).toBe(201);
      const tooMuch = await reserve({ scopes: { team }, estimate: { cost: '0.600001' } });
      expect(tooMuch.status).toBe(429);
      expect(tooMuch.body.error.type).toBe('budget_exceeded');
      const exact = await reserve({ scopes: { team }, estimate: { cost: '0.6' } });
      expect(exact.status).toBe(201);
      expect((await limitOf('team', team)).body).toMatchObject({ reserved: '1.000000', remaining: '0.000000' });
      const zero = await reserve({ scopes: { team }, estimate: { cost: '0' } });
      expect(zero.status).toBe(429);
      expect(zero.body.error).toMatchObject({ type: 'budget_exceeded', spend: '0.000000', reserved: '1.000000', requested: '0.000000' });
      expect((await limitOf('team', team)).body).toMatchObject({ reserved: '1.000000', in_flight: 2 });
    });

    it('a zero budget refuses everything', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '0' });
      const zero = await reserve({ scopes: { team }, estimate: { cost: '0' } });
      expect(zero.status).toBe(429);
      expect(zero.body.error.type).toBe('budget_exceeded');
    });

    it('charges an actual cost above the hold in full, then refuses new holds', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1' });
      const held = await reserve({ scopes: { team }, estimate: { cost: '0.5' } });
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '1.5' });
      expect(settled.status).toBe(200);
      expect(settled.body).toMatchObject({ actual_cost: '1.500000', released_cost: '0.000000' });
      expect((await limitOf('team', team)).body).toMatchObject({ spend: '1.500000', reserved: '0.000000', remaining: '0.000000' });
      for (const cost of ['0.01', '0']) {
        const refused = await reserve({ scopes: { team }, estimate: { cost } });
        expect(refused.status).toBe(429);
        expect(refused.body.error).toMatchObject({ type: 'budget_exceeded', spend: '1.500000', reserved: '0.000000' });
      }
    });

    it('a per-model budget of a scope refuses that model only', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '10', models: { 'gpt-4o': { max_budget: '0.01' } } });
      const refused = await reserve({ scopes: { team }, model: 'gpt-4o', estimate: { cost: '0.02' } });
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({
        type: 'budget_exceeded', scope: { kind: 'team', id: team, model: 'gpt-4o' },
        max_budget: '0.010000', spend: '0.000000', reserved: '0.000000', requested: '0.020000',
      });
      const other = await reserve({ scopes: { team }, model: 'gpt-4o-mini', estimate: { cost: '0.02' } });
      expect(other.status).toBe(201);
      const read = await limitOf('team', team);
      expect(read.body).toMatchObject({ reserved: '0.020000', in_flight: 1 });
      expect(read.body.models['gpt-4o']).toMatchObject({ max_budget: '0.010000', reserved: '0.000000', in_flight: 0 });
    });

    it('a retried refused key gets the same refusal, even once the budget has room; a new key is a new attempt', async () => {
      const team = uniqueId('team');
      const idem = uniqueId('idem');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '0.1' });
      const body = { scopes: { team }, estimate: { cost: '0.2' }, idempotency_key: idem };
      const refused = await reserve(body);
      expect(refused.status).toBe(429);
      expect(refused.headers.get('idempotent-replayed')).toBeNull();
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1' });
      const again = await reserve(body);
      expect(again.status).toBe(429);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.body).toEqual(refused.body);
      expect(again.headers.get('retry-after')).toBe(refused.headers.get('retry-after'));
      // The same key with another body is a conflict, as for an admitted key.
      expect((await reserve({ ...body, estimate: { cost: '0.3' } })).status).toBe(409);
      expect((await limitOf('team', team)).body).toMatchObject({ reserved: '0.000000', in_flight: 0 });
      const fresh = await reserve({ ...body, idempotency_key: uniqueId('idem') });
      expect(fresh.status).toBe(201);
      expect((await limitOf('team', team)).body).toMatchObject({ reserved: '0.200000', in_flight: 1 });
    });

    it('a refusal is forgotten after a day: the sweeper clears it and the key may be used again', async () => {
      const team = uniqueId('team');
      const idem = uniqueId('idem');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '0.1' });
      const body = { scopes: { team }, estimate: { cost: '0.2' }, idempotency_key: idem };
      expect((await reserve(body)).status).toBe(429);
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1' });
      h.clock.advance(23 * 3600);
      expect((await h.admin('POST', '/v1/sweep')).status).toBe(200);
      expect((await reserve(body)).status).toBe(429);
      h.clock.advance(3600 + 1);
      expect((await h.admin('POST', '/v1/sweep')).status).toBe(200);
      expect((await reserve(body)).status).toBe(201);
    });

    it('is all or nothing: when one scope refuses, the other scopes are unchanged', async () => {
      const kind = uniqueKind();
      const [limited, open] = [uniqueId('lim'), uniqueId('open')];
      await h.admin('PUT', `/v1/limits/${kind}/${limited}`, { max_budget: '1' });
      expect((await reserve({ scopes: { [kind]: [limited, open] }, estimate: { cost: '0.7', tokens: 20 } })).status).toBe(201);
      const before = await listKind(kind);
      const refused = await reserve({ scopes: { [kind]: [open, limited] }, estimate: { cost: '0.5', tokens: 20 } });
      expect(refused.status).toBe(429);
      expect(refused.body.error.scope).toEqual({ kind, id: limited });
      expect(await listKind(kind)).toEqual(before);
      expect((await limitOf(kind, open)).body).toMatchObject({ spend: '0.000000', reserved: '0.700000', in_flight: 1, requests_in_window: 1, tokens_in_window: 20 });
    });

    it('a refused reservation leaves no trace of a scope it named for the first time', async () => {
      const kind = uniqueKind();
      const limited = uniqueId('lim');
      await h.admin('PUT', `/v1/limits/${kind}/${limited}`, { max_budget: '0.1' });
      const before = await listKind(kind);
      expect(before.data).toHaveLength(1);
      const fresh = uniqueId('fresh');
      const refused = await reserve({ scopes: { [kind]: [limited, fresh] }, estimate: { cost: '0.5' } });
      expect(refused.status).toBe(429);
      expect(await listKind(kind)).toEqual(before);
      await expectNeverSeen(kind, fresh);
    });
  });

  describe('429 rate and parallel limits', () => {
    it('rpm 3: three admitted, the fourth refused with details and Retry-After, admitted again once the window slid', async () => {
      const start = nextMinute(h);
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { rpm: 3 });
      for (let i = 0; i < 3; i++) {
        const ok = await reserve({ scopes: { team }, estimate: { cost: '0' } });
        expect(ok.status).toBe(201);
        expect(ok.headers.get('x-ratelimit-team-limit-requests')).toBe('3');
        expect(ok.headers.get('x-ratelimit-team-remaining-requests')).toBe(String(2 - i));
        expect(ok.headers.get('x-ratelimit-limit-requests')).toBe('3');
        expect(ok.headers.get('x-ratelimit-remaining-requests')).toBe(String(2 - i));
        expect(ok.headers.get('x-ratelimit-reset-requests')).toBe('2m0s');
        expect(ok.headers.get('x-ratelimit-limit-tokens')).toBeNull();
      }
      h.clock.set(new Date(start + 10_000));
      const before = await limitOf('team', team);
      const refused = await reserve({ scopes: { team }, estimate: { cost: '0' } });
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ type: 'rate_limit_exceeded', scope: { kind: 'team', id: team }, limit_type: 'rpm', limit: 3, used: 3 });
      // Three requests in this window: the next window admits one once their weight (60 - s)/60 × 3 is at most 2,
      // i.e. 20 s into it: 50 s to the next window + 20 s.
      expect(refused.headers.get('retry-after')).toBe('70');
      expect(refused.headers.get('x-ratelimit-team-limit-requests')).toBe('3');
      expect(refused.headers.get('x-ratelimit-team-remaining-requests')).toBe('0');
      expect(refused.headers.get('x-ratelimit-limit-requests')).toBe('3');
      expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
      expect(refused.headers.get('x-ratelimit-reset-requests')).toBe('1m50s');
      const after = await limitOf('team', team);
      expect(after.body).toEqual(before.body);
      expect(after.body).toMatchObject({ requests_in_window: 3, in_flight: 3 });

      h.clock.set(new Date(start + 79_000));
      expect((await reserve({ scopes: { team }, estimate: { cost: '0' } })).status).toBe(429);
      h.clock.set(new Date(start + 80_000));
      const again = await reserve({ scopes: { team }, estimate: { cost: '0' } });
      expect(again.status).toBe(201);
      expect(again.headers.get('x-ratelimit-team-remaining-requests')).toBe('0');
      expect((await limitOf('team', team)).body).toMatchObject({ requests_in_window: 3, in_flight: 4 });
    });

    it('tpm: a hold whose tokens do not fit is refused with details and Retry-After', async () => {
      const start = nextMinute(h);
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { tpm: 1000 });
      const first = await reserve({ scopes: { team }, estimate: { cost: '0', tokens: 600 } });
      expect(first.status).toBe(201);
      expect(first.headers.get('x-ratelimit-team-limit-tokens')).toBe('1000');
      expect(first.headers.get('x-ratelimit-team-remaining-tokens')).toBe('400');
      expect(first.headers.get('x-ratelimit-limit-tokens')).toBe('1000');
      expect(first.headers.get('x-ratelimit-remaining-tokens')).toBe('400');
      expect(first.headers.get('x-ratelimit-limit-requests')).toBeNull();
      const before = await limitOf('team', team);
      const refused = await reserve({ scopes: { team }, estimate: { cost: '0', tokens: 600 } });
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ type: 'rate_limit_exceeded', scope: { kind: 'team', id: team }, limit_type: 'tpm', limit: 1000, used: 600 });
      // Only the next window has room, once 600 × (60 - s)/60 ≤ 400: 60 s + 20 s.
      expect(refused.headers.get('retry-after')).toBe('80');
      expect(refused.headers.get('x-ratelimit-team-remaining-tokens')).toBe('400');
      expect((await limitOf('team', team)).body).toEqual(before.body);
      const fits = await reserve({ scopes: { team }, estimate: { cost: '0', tokens: 400 } });
      expect(fits.status).toBe(201);
      expect(fits.headers.get('x-ratelimit-remaining-tokens')).toBe('0');
      h.clock.set(new Date(start + 80_000));
      // 1000 × 40/60 = 666.7 used; 333 more fit, 334 do not.
      expect((await reserve({ scopes: { team }, estimate: { cost: '0', tokens: 334 } })).status).toBe(429);
      expect((await reserve({ scopes: { team }, estimate: { cost: '0', tokens: 333 } })).status).toBe(201);
    });

    it('tpm: a request larger than the limit alone is refused, and releasing refunds tokens', async () => {
      nextMinute(h);
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { tpm: 1000 });
      const huge = await reserve({ scopes: { team }, estimate: { cost: '0', tokens: 1001 } });
      expect(huge.status).toBe(429);
      expect(huge.body.error).toMatchObject({ type: 'rate_limit_exceeded', limit_type: 'tpm', limit: 1000, used: 0 });
      const held = await reserve({ scopes: { team }, estimate: { cost: '0', tokens: 1000 } });
      expect(held.status).toBe(201);
      expect((await reserve({ scopes: { team }, estimate: { cost: '0', tokens: 1 } })).status).toBe(429);
      await h.service('POST', `/v1/reservations/${held.body.id}/release`);
      expect((await reserve({ scopes: { team }, estimate: { cost: '0', tokens: 1000 } })).status).toBe(201);
    });

    it('max_parallel 2: the third is refused until one is released or settled', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_parallel: 2 });
      const a = await reserve({ scopes: { team }, estimate: { cost: '0.1' } });
      const b = await reserve({ scopes: { team }, estimate: { cost: '0.1' } });
      expect([a.status, b.status]).toEqual([201, 201]);
      const before = await limitOf('team', team);
      const third = await reserve({ scopes: { team }, estimate: { cost: '0.1' } });
      expect(third.status).toBe(429);
      expect(third.body.error).toMatchObject({ type: 'parallel_limit_exceeded', scope: { kind: 'team', id: team } });
      expect((await limitOf('team', team)).body).toEqual(before.body);
      await h.service('POST', `/v1/reservations/${a.body.id}/release`);
      const c = await reserve({ scopes: { team }, estimate: { cost: '0.1' } });
      expect(c.status).toBe(201);
      expect((await reserve({ scopes: { team }, estimate: { cost: '0.1' } })).body.error.type).toBe('parallel_limit_exceeded');
      await h.service('POST', `/v1/reservations/${b.body.id}/settle`, { cost: '0.05' });
      expect((await reserve({ scopes: { team }, estimate: { cost: '0.1' } })).status).toBe(201);
      expect((await limitOf('team', team)).body).toMatchObject({ in_flight: 2, spend: '0.050000', reserved: '0.200000' });
    });

    it('a refused request leaves every counter of every scope as it was', async () => {
      nextMinute(h);
      const kind = uniqueKind();
      const [a, b, c] = [uniqueId('a'), uniqueId('b'), uniqueId('c')];
      await h.admin('PUT', `/v1/limits/${kind}/${a}`, { max_budget: '10', tpm: 10_000 });
      await h.admin('PUT', `/v1/limits/${kind}/${b}`, { rpm: 1 });
      await h.admin('PUT', `/v1/limits/${kind}/${c}`, { max_parallel: 5 });
      expect((await reserve({ scopes: { [kind]: [a, b, c] }, estimate: { cost: '1', tokens: 100 } })).status).toBe(201);
      const before = await listKind(kind);
      expect(before.data).toHaveLength(3);
      const refused = await reserve({ scopes: { [kind]: [a, b, c] }, estimate: { cost: '1', tokens: 100 } });
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ type: 'rate_limit_exceeded', scope: { kind, id: b }, limit_type: 'rpm' });
      expect(await listKind(kind)).toEqual(before);
    });
  });

  describe('stale holds', () => {
    it('a scope full because of an expired hold admits a new hold without any sweep', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', max_parallel: 1 });
      const stale = await reserve({ scopes: { team }, estimate: { cost: '1' }, ttl_seconds: 30 });
      expect(stale.status).toBe(201);
      expect((await reserve({ scopes: { team }, estimate: { cost: '0' } })).status).toBe(429);
      h.clock.advance(31);
      const fresh = await reserve({ scopes: { team }, estimate: { cost: '0.5' } });
      expect(fresh.status).toBe(201);
      const old = await h.service('GET', `/v1/reservations/${stale.body.id}`);
      expect(old.body.status).toBe('expired');
      expect(old.body.expired_at).not.toBeNull();
      expect((await limitOf('team', team)).body).toMatchObject({ reserved: '0.500000', in_flight: 1, spend: '0.000000' });
      // The old hold is gone for good: releasing it is a no-op, settling it is a late charge.
      const late = await h.service('POST', `/v1/reservations/${stale.body.id}/settle`, { cost: '0.25' });
      expect(late.body).toMatchObject({ status: 'settled', late: true, released_cost: '0.000000' });
      expect((await limitOf('team', team)).body).toMatchObject({ reserved: '0.500000', spend: '0.250000', in_flight: 1 });
    });
  });

  describe('unknown models', () => {
    it('hold the configured fallback (1.000000 by default), never zero', async () => {
      const key = uniqueId('key');
      const held = await reserve({ scopes: { key }, model: uniqueId('no-such-model'), request: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 } });
      expect(held.status).toBe(201);
      expect(held.body.reserved_cost).toBe('1.000000');
      expect(held.body.estimate.source).toBe('fallback');
      expect((await limitOf('key', key)).body.reserved).toBe('1.000000');
      const noRequest = await reserve({ scopes: { key }, model: uniqueId('no-such-model') });
      expect(noRequest.status).toBe(201);
      expect(noRequest.body).toMatchObject({ reserved_cost: '1.000000', estimate: { source: 'fallback' } });
    });

    it('a settle from usage on an unknown model charges the hold, not zero', async () => {
      const key = uniqueId('key');
      const held = await reserve({ scopes: { key }, model: uniqueId('no-such-model'), request: { prompt: 'x' } });
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { usage: { prompt_tokens: 5, completion_tokens: 5 } });
      expect(settled.status).toBe(200);
      expect(settled.body).toMatchObject({ actual_cost: '1.000000', cost_source: 'hold' });
    });

    describe.each([
      ['reject', null],
      ['0.25', '0.250000'],
    ] as const)('with SPENDGATE_UNKNOWN_MODEL_HOLD=%s', (setting, hold) => {
      let g: Harness;
      beforeAll(async () => {
        g = await startHarness(backend, { env: { SPENDGATE_UNKNOWN_MODEL_HOLD: setting } });
      });
      afterAll(() => g.close());
      afterEach(() => g.expectAuditOk());

      it(hold === null ? 'rejects a model missing from the price table with 400 naming model' : `holds ${hold}`, async () => {
        const key = uniqueId('key');
        const reply = await g.service('POST', '/v1/reservations', { scopes: { key }, model: uniqueId('no-such-model'), request: { max_tokens: 10 } });
        if (hold === null) {
          expectInvalid(reply, 'model');
          const read = await g.service('GET', `/v1/limits/key/${key}`);
          expect(read.status).toBe(404);
        } else {
          expect(reply.status).toBe(201);
          expect(reply.body).toMatchObject({ reserved_cost: hold, estimate: { source: 'fallback' } });
        }
        // A known model is priced as always.
        const known = await g.service('POST', '/v1/reservations', { scopes: { key }, model: 'gpt-4o', request: { max_tokens: 10 } });
        expect(known.status).toBe(201);
        expect(known.body.estimate.source).toBe('request');
        // The caller's own estimate is always accepted.
        const priced = await g.service('POST', '/v1/reservations', { scopes: { key }, model: uniqueId('no-such-model'), estimate: { cost: '0.03' } });
        expect(priced.status).toBe(201);
        expect(priced.body).toMatchObject({ reserved_cost: '0.030000', estimate: { source: 'caller' } });
      });

      it.each(['whisper-1', 'gpt-image-1'])(
        `a model in the price table without a price to estimate with (%s) is treated as unknown (${hold ?? 'rejected'})`,
        async (model) => {
          // whisper-1 has no per-token price, gpt-image-1 no per-image or per-pixel price in the starter table.
          const key = uniqueId('key');
          const reply = await g.service('POST', '/v1/reservations', { scopes: { key }, model, request: { prompt: 'a cat' } });
          if (hold === null) {
            expectInvalid(reply, 'model');
            expect((await g.service('GET', `/v1/limits/key/${key}`)).status).toBe(404);
          } else {
            expect(reply.status).toBe(201);
            expect(reply.body).toMatchObject({ reserved_cost: hold, estimate: { source: 'fallback' } });
          }
        },
      );
    });
  });

  describe('TPM quarter cap', () => {
    const messages = [{ role: 'user', content: 'hi' }]; // 8 input tokens for gpt-4o: 4 + 1 ("hi", o200k_base) + 3

    it('without max_tokens the output part of the token hold is a quarter of the smallest tpm', async () => {
      nextMinute(h);
      const team = uniqueId('team');
      const key = uniqueId('key');
      await h.admin('PUT', `/v1/limits/team/${team}`, { tpm: 4000 });
      await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 100_000 });
      const held = await reserve({ scopes: { team, key }, model: 'gpt-4o', request: { messages } });
      expect(held.status).toBe(201);
      expect(held.body.reserved_tokens).toBe(8 + 1000);
      expect(held.body.estimate).toMatchObject({ input_tokens: 8, output_tokens: 16384, output_tokens_cap: 1000 });
      // The cost still holds the whole output: 8 × 0.0000025 + 16384 × 0.00001.
      expect(held.body.reserved_cost).toBe('0.163860');
      expect((await limitOf('team', team)).body.tokens_in_window).toBe(1008);
      expect(held.headers.get('x-ratelimit-team-remaining-tokens')).toBe('2992');
      expect(held.headers.get('x-ratelimit-remaining-tokens')).toBe('2992');
    });

    it('with max_tokens 3000 it holds input + 3000', async () => {
      nextMinute(h);
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { tpm: 4000 });
      const held = await reserve({ scopes: { team }, model: 'gpt-4o', request: { messages, max_tokens: 3000 } });
      expect(held.status).toBe(201);
      expect(held.body.reserved_tokens).toBe(3008);
      expect(held.body.estimate).toMatchObject({ input_tokens: 8, output_tokens: 3000 });
      expect(held.body.estimate.output_tokens_cap).toBeUndefined();
      const again = await reserve({ scopes: { team }, model: 'gpt-4o', request: { messages, max_tokens: 3000 } });
      expect(again.status).toBe(429);
      expect(again.body.error).toMatchObject({ type: 'rate_limit_exceeded', limit_type: 'tpm', limit: 4000, used: 3008 });
    });

    it('without any tpm the output part is not capped', async () => {
      const key = uniqueId('key');
      const held = await reserve({ scopes: { key }, model: 'gpt-4o', request: { messages } });
      expect(held.body.reserved_tokens).toBe(8 + 16384);
      expect(held.body.estimate.output_tokens_cap).toBeUndefined();
    });
  });

  describe('unknown fields', () => {
    it('are refused with one issue naming each, and change nothing', async () => {
      const key = uniqueId('key');
      const reserve = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.1' }, idempotencyKey: 'x', ttl: 5 });
      expect(reserve.status).toBe(400);
      expect(reserve.body.error.type).toBe('invalid_request');
      expect(reserve.body.error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['idempotencyKey', 'ttl']);
      expect((await h.service('GET', `/v1/limits/key/${key}`)).status).toBe(404);

      const estimate = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.1', tokenz: 3 } });
      expect(estimate.body.error.issues).toEqual([expect.objectContaining({ path: 'estimate.tokenz' })]);

      const held = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.1' } });
      expect(held.status).toBe(201);
      const extend = await h.service('POST', `/v1/reservations/${held.body.id}/extend`, { ttl: 5000 });
      expect(extend.status).toBe(400);
      expect(extend.body.error.issues[0].path).toBe('ttl');
      const settle = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '0.1', usagee: {} });
      expect(settle.status).toBe(400);
      expect(settle.body.error.issues[0].path).toBe('usagee');
      expect((await h.service('GET', `/v1/reservations/${held.body.id}`)).body.status).toBe('held');
      await h.service('POST', `/v1/reservations/${held.body.id}/release`);

      const team = uniqueId('team');
      const limit = await h.admin('PUT', `/v1/limits/team/${team}`, { max_bugdet: '7', models: { 'gpt-4o': { rpmm: 1 } } });
      expect(limit.status).toBe(400);
      expect(limit.body.error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['max_bugdet', 'models.gpt-4o.rpmm']);
      expect((await h.service('GET', `/v1/limits/team/${team}`)).status).toBe(404);
    });

    it('inside the model request and the provider usage are the provider\'s own, and pass', async () => {
      const key = uniqueId('key');
      const held = await h.service('POST', '/v1/reservations', { scopes: { key }, model: 'gpt-4o', request: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, temperature: 0.2, stream: true } });
      expect(held.status).toBe(201);
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14, some_new_field: 1 } });
      expect(settled.status).toBe(200);
    });
  });
});
