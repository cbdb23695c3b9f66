import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, uniqueId } from './support/harness.ts';

/** A scope kind no other test uses (kinds are `[a-z_]{1,32}`, so uniqueId() cannot make one). */
function uniqueKind(): string {
  const letters = Array.from(crypto.getRandomValues(new Uint8Array(14)), (b) => String.fromCharCode(97 + (b % 26))).join('');
  return `lk_${letters}`;
}

// gpt-4o with {messages: [{role: user, content: "hi"}], max_tokens: 256}: input "hi" is 1 o200k_base
// token + 4 per message + 3 priming = 8 × 0.0000025, output 256 × 0.00001.
const HI = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 256 };
const GPT_4O_HI_COST = '0.002580';
// gpt-4o-mini (o200k_base too), same request: 8 × 0.00000015 + 256 × 0.0000006.
const GPT_4O_MINI_HI_COST = '0.0001548';

describe.each(backends)('limits (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  /** Reserve `cost` on `scopes` and settle it at `cost`: `cost` of spend. */
  async function spend(scopes: Record<string, string>, cost: string, model?: string) {
    const held = await h.service('POST', '/v1/reservations', { scopes, estimate: { cost }, ...(model ? { model } : {}) });
    expect(held.status).toBe(201);
    const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost });
    expect(settled.status).toBe(200);
    return held.body.id as string;
  }

  describe('PUT merges', () => {
    it('sets every field, then changes only the fields given; null removes one', async () => {
      const team = uniqueId('team');
      const first = await h.admin('PUT', `/v1/limits/team/${team}`, {
        max_budget: '50.00', soft_budget: '40.00', rpm: 600, tpm: 200000, max_parallel: 20,
      });
      expect(first.status).toBe(200);
      expect(first.body).toMatchObject({
        kind: 'team', id: team, max_budget: '50.000000', soft_budget: '40.000000', budget_duration: null,
        rpm: 600, tpm: 200000, max_parallel: 20, spend: '0.000000', reserved: '0.000000', remaining: '50.000000',
        models: {}, created_at: '2026-03-10T12:00:00.000000Z', updated_at: '2026-03-10T12:00:00.000000Z',
      });

      h.clock.advance(10);
      const rpmOnly = await h.admin('PUT', `/v1/limits/team/${team}`, { rpm: 100 });
      expect(rpmOnly.status).toBe(200);
      expect(rpmOnly.body).toMatchObject({
        max_budget: '50.000000', soft_budget: '40.000000', rpm: 100, tpm: 200000, max_parallel: 20,
        created_at: '2026-03-10T12:00:00.000000Z', updated_at: '2026-03-10T12:00:10.000000Z',
      });

      const removed = await h.admin('PUT', `/v1/limits/team/${team}`, { soft_budget: null, tpm: null, max_budget: '7.5' });
      expect(removed.status).toBe(200);
      expect(removed.body).toMatchObject({
        max_budget: '7.500000', soft_budget: null, rpm: 100, tpm: null, max_parallel: 20, remaining: '7.500000',
      });

      const read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({
        kind: 'team', id: team, max_budget: '7.500000', soft_budget: null, budget_duration: null,
        rpm: 100, tpm: null, max_parallel: 20, remaining: '7.500000', models: {},
      });

      // An empty body changes nothing.
      const nothing = await h.admin('PUT', `/v1/limits/team/${team}`, {});
      expect(nothing.status).toBe(200);
      expect(nothing.body).toMatchObject({ max_budget: '7.500000', rpm: 100, max_parallel: 20, tpm: null });
    });

    it('budget_duration "24h" reads back as written and lasts a day', async () => {
      const team = uniqueId('team');
      const put = await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '3', budget_duration: '24h' });
      expect(put.status).toBe(200);
      expect(put.body.budget_duration).toBe('24h');
      const read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(read.body).toMatchObject({ budget_duration: '24h', max_budget: '3.000000' });
      const now = (h.clock.now() as Date).getTime();
      const iso = (ms: number) => new Date(ms).toISOString().replace(/Z$/, '000Z');
      expect(read.body).toMatchObject({ period_start: iso(now), resets_at: iso(now + 86_400_000) });
    });

    it('rejects an unknown budget_duration with the field path', async () => {
      const team = uniqueId('team');
      const bad = await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', budget_duration: '2d' });
      expect(bad.status).toBe(400);
      expect(bad.body.error.type).toBe('invalid_request');
      expect(bad.body.error.issues.map((i: { path: string }) => i.path)).toContain('budget_duration');
      expect((await h.service('GET', `/v1/limits/team/${team}`)).status).toBe(404);
    });

    it('merges the models map one model at a time; null removes one model, models: null removes all', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '50', models: { 'gpt-4o': { max_budget: '10', rpm: 60, tpm: 50000 } } });
      let read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(Object.keys(read.body.models)).toEqual(['gpt-4o']);
      expect(read.body.models['gpt-4o']).toMatchObject({
        max_budget: '10.000000', rpm: 60, tpm: 50000, max_parallel: null, spend: '0.000000', reserved: '0.000000', remaining: '10.000000',
      });

      // A second model is added; the first stays.
      await h.admin('PUT', `/v1/limits/team/${team}`, { models: { 'gpt-4o-mini': { tpm: 5000 } } });
      read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(Object.keys(read.body.models).sort()).toEqual(['gpt-4o', 'gpt-4o-mini']);
      expect(read.body.models['gpt-4o']).toMatchObject({ max_budget: '10.000000', rpm: 60, tpm: 50000 });
      expect(read.body.models['gpt-4o-mini']).toMatchObject({ max_budget: null, rpm: null, tpm: 5000, remaining: null });
      expect(read.body.max_budget).toBe('50.000000');

      // One field of one model limit merges like a scope's.
      await h.admin('PUT', `/v1/limits/team/${team}`, { models: { 'gpt-4o': { rpm: 30, tpm: null } } });
      read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(read.body.models['gpt-4o']).toMatchObject({ max_budget: '10.000000', rpm: 30, tpm: null });
      expect(read.body.models['gpt-4o-mini']).toMatchObject({ tpm: 5000 });

      // null removes that model's limit only.
      await h.admin('PUT', `/v1/limits/team/${team}`, { models: { 'gpt-4o': null } });
      read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(Object.keys(read.body.models)).toEqual(['gpt-4o-mini']);

      // A body without models leaves them alone.
      await h.admin('PUT', `/v1/limits/team/${team}`, { rpm: 5 });
      read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(Object.keys(read.body.models)).toEqual(['gpt-4o-mini']);
      expect(read.body).toMatchObject({ rpm: 5, max_budget: '50.000000' });

      // models: null removes them all; the scope's own limit stays.
      const all = await h.admin('PUT', `/v1/limits/team/${team}`, { models: null });
      expect(all.status).toBe(200);
      read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(read.body.models).toEqual({});
      expect(read.body).toMatchObject({ max_budget: '50.000000', rpm: 5 });
    });

    it('only admin may PUT', async () => {
      const team = uniqueId('team');
      const denied = await h.service('PUT', `/v1/limits/team/${team}`, { max_budget: '1' });
      expect(denied.status).toBe(403);
      expect(denied.body.error.type).toBe('forbidden');
      expect((await h.service('GET', `/v1/limits/team/${team}`)).status).toBe(404);
    });
  });

  describe('GET', () => {
    it('answers for a scope named by a reservation but without a limit, with null limit fields', async () => {
      const user = uniqueId('user');
      const held = await h.service('POST', '/v1/reservations', { scopes: { user }, estimate: { cost: '0.25', tokens: 40 } });
      expect(held.status).toBe(201);
      const read = await h.service('GET', `/v1/limits/user/${user}`);
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({
        kind: 'user', id: user,
        max_budget: null, soft_budget: null, budget_duration: null, rpm: null, tpm: null, max_parallel: null,
        spend: '0.000000', reserved: '0.250000', remaining: null,
        period_start: null, resets_at: null,
        requests_in_window: 1, tokens_in_window: 40, in_flight: 1,
        models: {},
      });
      await h.service('POST', `/v1/reservations/${held.body.id}/release`);
    });

    it('404 for a scope never seen, with the not_found shape', async () => {
      const read = await h.service('GET', `/v1/limits/user/${uniqueId('user')}`);
      expect(read.status).toBe(404);
      expect(read.body.error.type).toBe('not_found');
      expect(typeof read.body.error.message).toBe('string');
    });

    it('a PUT that clears every field keeps the scope, with null limit fields, until DELETE', async () => {
      const team = uniqueId('team');
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '5' })).status).toBe(200);
      const cleared = await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: null });
      expect(cleared.status).toBe(200);
      expect(cleared.body).toMatchObject({ kind: 'team', id: team, max_budget: null, remaining: null, spend: '0.000000' });
      expect((await h.service('GET', `/v1/limits/team/${team}`)).status).toBe(200);
      const empty = await h.admin('PUT', `/v1/limits/team/${uniqueId('team')}`, {});
      expect(empty.status).toBe(200);
      expect(empty.body.max_budget).toBeNull();
      expect((await h.admin('DELETE', `/v1/limits/team/${team}`)).status).toBe(200);
      expect((await h.service('GET', `/v1/limits/team/${team}`)).status).toBe(404);
    });

    it('400 with the field path for a malformed kind', async () => {
      const read = await h.service('GET', `/v1/limits/Team-1/${uniqueId('x')}`);
      expect(read.status).toBe(400);
      expect(read.body.error.type).toBe('invalid_request');
      expect(read.body.error.issues.map((i: { path: string }) => i.path)).toContain('kind');
    });
  });

  describe('list', () => {
    it('pages in (kind, id) order, following next_cursor to a last page with next_cursor null', async () => {
      const kind = uniqueKind();
      // Ids whose byte order differs from a dictionary order: upper case, underscore and digits sort by code point.
      const ids = [uniqueId('beta'), uniqueId('Alpha'), uniqueId('_under'), uniqueId('alpha'), uniqueId('Zed')];
      const limited = new Set(ids.slice(0, 3));
      for (const id of ids.slice(0, 3)) {
        expect((await h.admin('PUT', `/v1/limits/${kind}/${id}`, { max_budget: '2' })).status).toBe(200);
      }
      // Two scopes seen only through a reservation.
      const held = await h.service('POST', '/v1/reservations', { scopes: { [kind]: ids.slice(3) }, estimate: { cost: '0.5' } });
      expect(held.status).toBe(201);

      const expected = [...ids].sort();
      const pages: Array<{ ids: string[]; next: string | null }> = [];
      let cursor: string | null = null;
      for (let i = 0; i < 10; i++) {
        const query: string = `/v1/limits?kind=${kind}&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const page = await h.service('GET', query);
        expect(page.status).toBe(200);
        for (const item of page.body.data) {
          expect(item.kind).toBe(kind);
          if (limited.has(item.id)) expect(item).toMatchObject({ max_budget: '2.000000', reserved: '0.000000', remaining: '2.000000' });
          else expect(item).toMatchObject({ max_budget: null, reserved: '0.500000', remaining: null, in_flight: 1 });
        }
        pages.push({ ids: page.body.data.map((s: { id: string }) => s.id), next: page.body.next_cursor });
        cursor = page.body.next_cursor;
        if (cursor === null) break;
      }
      expect(pages.map((p) => p.ids)).toEqual([expected.slice(0, 2), expected.slice(2, 4), expected.slice(4)]);
      expect(pages[0]?.next).toEqual(expect.any(String));
      expect(pages[1]?.next).toEqual(expect.any(String));
      expect(pages[2]?.next).toBeNull();

      // Without a limit: one page of all five, no cursor.
      const whole = await h.service('GET', `/v1/limits?kind=${kind}`);
      expect(whole.body.data.map((s: { id: string }) => s.id)).toEqual(expected);
      expect(whole.body.next_cursor).toBeNull();
      await h.service('POST', `/v1/reservations/${held.body.id}/release`);
    });

    it('a last page that is exactly full has next_cursor null', async () => {
      const kind = uniqueKind();
      const ids = [uniqueId('s'), uniqueId('s'), uniqueId('s'), uniqueId('s')];
      for (const id of ids) await h.admin('PUT', `/v1/limits/${kind}/${id}`, { rpm: 10 });
      const expected = [...ids].sort();
      const first = await h.service('GET', `/v1/limits?kind=${kind}&limit=2`);
      expect(first.body.data.map((s: { id: string }) => s.id)).toEqual(expected.slice(0, 2));
      expect(first.body.next_cursor).toEqual(expect.any(String));
      const second = await h.service('GET', `/v1/limits?kind=${kind}&limit=2&cursor=${encodeURIComponent(first.body.next_cursor)}`);
      expect(second.body.data.map((s: { id: string }) => s.id)).toEqual(expected.slice(2, 4));
      expect(second.body.next_cursor).toBeNull();
    });

    /** Every id of `kind`, following next_cursor a page of `size` at a time. */
    async function listAll(kind: string, size: number): Promise<string[]> {
      const seen: string[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 20; i++) {
        const query: string = `/v1/limits?kind=${kind}&limit=${size}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const page = await h.service('GET', query);
        expect(page.status).toBe(200);
        seen.push(...page.body.data.map((s: { id: string }) => s.id));
        cursor = page.body.next_cursor;
        if (cursor === null) break;
      }
      return seen;
    }

    it('pages through ids with accented Latin letters', async () => {
      const kind = uniqueKind();
      const stem = uniqueId('équipe');
      const ids = [`${stem}-é`, `${stem}-ö`, `${stem}-ü`];
      for (const id of ids) expect((await h.admin('PUT', `/v1/limits/${kind}/${encodeURIComponent(id)}`, { rpm: 1 })).status).toBe(200);
      expect(await listAll(kind, 1)).toEqual(ids);
    });

    it('pages through ids with characters outside Latin-1', async () => {
      const kind = uniqueKind();
      const ids = [`${uniqueId('a')}-x`, `${uniqueId('b')}-团队`, `${uniqueId('c')}-😀`, uniqueId('d')];
      for (const id of ids) {
        const put = await h.admin('PUT', `/v1/limits/${kind}/${encodeURIComponent(id)}`, { max_budget: '1' });
        expect(put.status).toBe(200);
        expect(put.body.id).toBe(id);
      }
      expect(await listAll(kind, 1)).toEqual(ids);
    });

    it('an unknown kind lists nothing', async () => {
      const page = await h.service('GET', `/v1/limits?kind=${uniqueKind()}`);
      expect(page.status).toBe(200);
      expect(page.body).toEqual({ data: [], next_cursor: null });
    });

    it('a cursor this API did not give out is 400 with path "cursor"', async () => {
      for (const cursor of ['not-a-cursor', btoa('hello'), btoa(JSON.stringify({ kind: 'team' }))]) {
        const page = await h.service('GET', `/v1/limits?kind=team&cursor=${encodeURIComponent(cursor)}`);
        expect(page.status).toBe(400);
        expect(page.body.error.type).toBe('invalid_request');
        expect(page.body.error.issues.map((i: { path: string }) => i.path)).toContain('cursor');
      }
    });

    it('a page size out of range is 400 with path "limit"', async () => {
      const page = await h.service('GET', '/v1/limits?limit=0');
      expect(page.status).toBe(400);
      expect(page.body.error.issues.map((i: { path: string }) => i.path)).toContain('limit');
    });
  });

  describe('DELETE', () => {
    it('404 for a scope without a limit, whether never seen or only named by a reservation', async () => {
      const never = await h.admin('DELETE', `/v1/limits/team/${uniqueId('team')}`);
      expect(never.status).toBe(404);
      expect(never.body.error.type).toBe('not_found');

      const seen = uniqueId('team');
      await spend({ team: seen }, '0.1');
      const unlimited = await h.admin('DELETE', `/v1/limits/team/${seen}`);
      expect(unlimited.status).toBe(404);
      expect(unlimited.body.error.type).toBe('not_found');
      expect((await h.service('GET', `/v1/limits/team/${seen}`)).body.spend).toBe('0.100000');
    });

    it('removes the limit and its model limits, keeps the spend, and lifts the refusal', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1', rpm: 100, models: { 'gpt-4o': { max_budget: '0.5' } } });
      await spend({ team }, '0.8');
      const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.5' } });
      expect(refused.status).toBe(429);
      expect(refused.body.error.type).toBe('budget_exceeded');

      const deleted = await h.admin('DELETE', `/v1/limits/team/${team}`);
      expect(deleted.status).toBe(200);
      expect(deleted.body).toEqual({ kind: 'team', id: team, deleted: true });

      const read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({
        max_budget: null, rpm: null, spend: '0.800000', reserved: '0.000000', remaining: null, models: {},
      });

      const admitted = await h.service('POST', '/v1/reservations', { scopes: { team }, model: 'gpt-4o', estimate: { cost: '0.6' } });
      expect(admitted.status).toBe(201);
      await h.service('POST', `/v1/reservations/${admitted.body.id}/release`);

      expect((await h.admin('DELETE', `/v1/limits/team/${team}`)).status).toBe(404);
    });

    it('only admin may DELETE', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1' });
      expect((await h.service('DELETE', `/v1/limits/team/${team}`)).status).toBe(403);
      expect((await h.service('GET', `/v1/limits/team/${team}`)).body.max_budget).toBe('1.000000');
    });
  });

  describe('model limits', () => {
    it('a gpt-4o budget refuses gpt-4o holds while gpt-4o-mini holds on the same scope pass', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { models: { 'gpt-4o': { max_budget: '0.001' } } });

      const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, model: 'gpt-4o', request: HI });
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({
        type: 'budget_exceeded',
        scope: { kind: 'team', id: team, model: 'gpt-4o' },
        max_budget: '0.001000', spend: '0.000000', reserved: '0.000000', requested: GPT_4O_HI_COST, resets_at: null,
      });
      expect(refused.headers.get('retry-after')).toBeNull();

      // The model limit follows the price-table resolution: openai/gpt-4o is gpt-4o.
      const prefixed = await h.service('POST', '/v1/reservations', { scopes: { team }, model: 'openai/gpt-4o', request: HI });
      expect(prefixed.status).toBe(429);
      expect(prefixed.body.error.scope).toEqual({ kind: 'team', id: team, model: 'gpt-4o' });

      const mini = await h.service('POST', '/v1/reservations', { scopes: { team }, model: 'gpt-4o-mini', request: HI });
      expect(mini.status).toBe(201);
      expect(mini.body.reserved_cost).toBe(GPT_4O_MINI_HI_COST);
      const scope = mini.body.scopes.find((s: { kind: string }) => s.kind === 'team');
      expect(scope).toMatchObject({ id: team, reserved: GPT_4O_MINI_HI_COST, max_budget: null });
      expect(scope.model_limit).toBeUndefined();

      const read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(read.body).toMatchObject({ max_budget: null, reserved: GPT_4O_MINI_HI_COST, in_flight: 1 });
      expect(read.body.models['gpt-4o']).toMatchObject({ max_budget: '0.001000', spend: '0.000000', reserved: '0.000000', remaining: '0.001000', in_flight: 0 });

      const settled = await h.service('POST', `/v1/reservations/${mini.body.id}/settle`, { usage: { prompt_tokens: 100, completion_tokens: 10 } });
      // 100 × 0.00000015 + 10 × 0.0000006
      expect(settled.body.actual_cost).toBe('0.000021');
    });

    it('a gpt-4o hold that fits shows the model limit as model_limit of its scope, and in GET under models', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '5', models: { 'gpt-4o': { max_budget: '1', rpm: 7 } } });
      const held = await h.service('POST', '/v1/reservations', { scopes: { key: uniqueId('key'), team }, model: 'gpt-4o', request: HI });
      expect(held.status).toBe(201);
      const scope = held.body.scopes.find((s: { kind: string }) => s.kind === 'team');
      expect(scope).toMatchObject({ id: team, max_budget: '5.000000', reserved: GPT_4O_HI_COST, remaining: '4.997420' });
      expect(scope.model_limit).toMatchObject({
        model: 'gpt-4o', max_budget: '1.000000', rpm: 7, spend: '0.000000', reserved: GPT_4O_HI_COST, remaining: '0.997420', in_flight: 1, requests_in_window: 1,
      });
      const key = held.body.scopes.find((s: { kind: string }) => s.kind === 'key');
      expect(key.model_limit).toBeUndefined();

      let read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(read.body.models['gpt-4o']).toMatchObject({ max_budget: '1.000000', rpm: 7, reserved: GPT_4O_HI_COST, remaining: '0.997420', in_flight: 1 });

      await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '0.75' });
      read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(read.body).toMatchObject({ spend: '0.750000', reserved: '0.000000', remaining: '4.250000' });
      expect(read.body.models['gpt-4o']).toMatchObject({ spend: '0.750000', reserved: '0.000000', remaining: '0.250000', in_flight: 0 });

      // The model's own budget now refuses what the scope's would still hold.
      const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, model: 'gpt-4o', estimate: { cost: '0.3' } });
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ type: 'budget_exceeded', scope: { kind: 'team', id: team, model: 'gpt-4o' }, spend: '0.750000', requested: '0.300000' });
      const other = await h.service('POST', '/v1/reservations', { scopes: { team }, model: 'gpt-4o-mini', estimate: { cost: '0.3' } });
      expect(other.status).toBe(201);
      await h.service('POST', `/v1/reservations/${other.body.id}/release`);
    });

    it('a model limit applies to a model missing from the price table, by the name the reservation gives', async () => {
      const team = uniqueId('team');
      const model = uniqueId('private-model');
      await h.admin('PUT', `/v1/limits/team/${team}`, { models: { [model]: { max_budget: '0.5' } } });
      const held = await h.service('POST', '/v1/reservations', { scopes: { team }, model, estimate: { cost: '0.4' } });
      expect(held.status).toBe(201);
      expect(held.body.scopes[0].model_limit).toMatchObject({ model, reserved: '0.400000', remaining: '0.100000' });
      const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, model, estimate: { cost: '0.2' } });
      expect(refused.status).toBe(429);
      expect(refused.body.error.scope).toEqual({ kind: 'team', id: team, model });
      await h.service('POST', `/v1/reservations/${held.body.id}/release`);
    });

    it('a model limit counts only spend made after it exists', async () => {
      const team = uniqueId('team');
      await spend({ team }, '0.5', 'gpt-4o');
      await h.admin('PUT', `/v1/limits/team/${team}`, { models: { 'gpt-4o': { max_budget: '1' } } });
      const read = await h.service('GET', `/v1/limits/team/${team}`);
      expect(read.body).toMatchObject({ spend: '0.500000' });
      expect(read.body.models['gpt-4o']).toMatchObject({ spend: '0.000000', remaining: '1.000000' });
      const held = await h.service('POST', '/v1/reservations', { scopes: { team }, model: 'gpt-4o', estimate: { cost: '0.8' } });
      expect(held.status).toBe(201);
      expect(held.body.scopes[0].model_limit).toMatchObject({ reserved: '0.800000', remaining: '0.200000' });
      await h.service('POST', `/v1/reservations/${held.body.id}/release`);
    });
  });
});
