import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, uniqueId } from './support/harness.ts';

describe.each(backends)('exact money (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());


  /** Reserve `hold` on `scopes` and settle it at `cost`; answers the settle. `hold` and `cost` go as given (string or number). */
  async function reserveAndSettle(scopes: Record<string, string>, hold: string | number, cost: string | number) {
    const held = await h.service('POST', '/v1/reservations', { scopes, estimate: { cost: hold } });
    expect(held.status).toBe(201);
    const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost });
    expect(settled.status).toBe(200);
    return settled.body;
  }

  describe('0.1 + 0.2', () => {
    it('as decimal strings sums to exactly 0.3', async () => {
      const key = uniqueId('key');
      expect((await reserveAndSettle({ key }, '0.1', '0.1')).actual_cost).toBe('0.100000');
      expect((await reserveAndSettle({ key }, '0.2', '0.2')).actual_cost).toBe('0.200000');
      expect((await h.scope('key', key)).spend).toBe('0.300000');
    });

    it('as JSON numbers sums to exactly 0.3', async () => {
      const key = uniqueId('key');
      const first = await reserveAndSettle({ key }, 0.1, 0.1);
      expect(first).toMatchObject({ reserved_cost: '0.100000', actual_cost: '0.100000', released_cost: '0.000000' });
      const second = await reserveAndSettle({ key }, 0.2, 0.2);
      expect(second).toMatchObject({ reserved_cost: '0.200000', actual_cost: '0.200000' });
      expect((await h.scope('key', key)).spend).toBe('0.300000');
    });

    it('a budget of 0.3 holds 0.1 + 0.2 exactly, and then nothing more', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: 0.3 });
      const a = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: 0.1 } });
      const b = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: 0.2 } });
      expect(a.status).toBe(201);
      expect(b.status).toBe(201);
      expect(b.body.scopes[0]).toMatchObject({ max_budget: '0.300000', reserved: '0.300000', remaining: '0.000000' });
      const c = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.000001' } });
      expect(c.status).toBe(429);
      expect(c.body.error).toMatchObject({ type: 'budget_exceeded', reserved: '0.300000', requested: '0.000001' });
      await h.service('POST', `/v1/reservations/${a.body.id}/settle`, { cost: 0.1 });
      await h.service('POST', `/v1/reservations/${b.body.id}/settle`, { cost: '0.2' });
      expect(await h.scope('team', team)).toMatchObject({ spend: '0.300000', reserved: '0.000000', remaining: '0.000000' });
    });
  });

  describe('tiny per-token prices', () => {
    it('7 tokens at 0.000000000123 cost exactly 0.000000000861', async () => {
      const model = uniqueId('tiny-model');
      const put = await h.admin('PUT', `/v1/models/${model}`, {
        mode: 'chat', input_cost_per_token: '0.000000000123', output_cost_per_token: '0.000000000456', max_output_tokens: 100,
      });
      expect(put.status).toBe(200);
      const key = uniqueId('key');
      const held = await h.service('POST', '/v1/reservations', {
        scopes: { key }, model, request: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 },
      });
      expect(held.status).toBe(201);
      // 9 input tokens × 0.000000000123 + 10 output tokens × 0.000000000456
      expect(held.body).toMatchObject({ reserved_cost: '0.000000005667', estimate: { input_tokens: 9, output_tokens: 10, source: 'request' } });

      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { usage: { prompt_tokens: 7, completion_tokens: 0 } });
      expect(settled.status).toBe(200);
      expect(settled.body).toMatchObject({ actual_cost: '0.000000000861', released_cost: '0.000000004806', cost_source: 'usage', actual_tokens: 7 });
      expect(await h.scope('key', key)).toMatchObject({ spend: '0.000000000861', reserved: '0.000000' });
    });

    it('a price sent as a JSON number in exponent form is read as the same decimal', async () => {
      const model = uniqueId('tiny-model');
      const put = await h.admin('PUT', `/v1/models/${model}`, { mode: 'chat', input_cost_per_token: 1.23e-10, output_cost_per_token: 4.56e-10 });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({ input_cost_per_token: '0.000000000123', output_cost_per_token: '0.000000000456' });
      const key = uniqueId('key');
      const held = await h.service('POST', '/v1/reservations', { scopes: { key }, model, request: { prompt: 'x', max_tokens: 3 } });
      // 1 input token + 3 output tokens
      expect(held.body.reserved_cost).toBe('0.000000001491');
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { usage: { input_tokens: 7, output_tokens: 1000000 } });
      // 7 × 0.000000000123 + 1000000 × 0.000000000456
      expect(settled.body.actual_cost).toBe('0.000456000861');
      expect((await h.scope('key', key)).spend).toBe('0.000456000861');
    });

    it('fifty holds and settles of a nano-dollar add up exactly', async () => {
      const key = uniqueId('key');
      const ids: string[] = [];
      for (let i = 0; i < 50; i++) {
        const held = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.000000001' } });
        expect(held.status).toBe(201);
        ids.push(held.body.id);
      }
      expect((await h.scope('key', key)).reserved).toBe('0.00000005');
      for (const id of ids) await h.service('POST', `/v1/reservations/${id}/settle`, { cost: '1e-9' });
      expect(await h.scope('key', key)).toMatchObject({ spend: '0.00000005', reserved: '0.000000' });
    });
  });

  describe('large budgets', () => {
    it('max_budget 999999999999.99 with several holds leaves an exact remainder', async () => {
      const team = uniqueId('team');
      const put = await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '999999999999.99' });
      expect(put.body).toMatchObject({ max_budget: '999999999999.990000', remaining: '999999999999.990000' });
      const holds = ['123456789012.34', '0.01', '876543210987.64'];
      const ids: string[] = [];
      for (const cost of holds) {
        const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost } });
        expect(held.status).toBe(201);
        ids.push(held.body.id);
      }
      expect(await h.scope('team', team)).toMatchObject({ reserved: '999999999999.990000', remaining: '0.000000', in_flight: 3 });
      const refused = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.000001' } });
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ max_budget: '999999999999.990000', reserved: '999999999999.990000' });

      const settled = await h.service('POST', `/v1/reservations/${ids[0]}/settle`, { cost: '123456789012.335' });
      expect(settled.body).toMatchObject({ actual_cost: '123456789012.335000', released_cost: '0.005000' });
      expect(await h.scope('team', team)).toMatchObject({
        spend: '123456789012.335000', reserved: '876543210987.650000', remaining: '0.005000',
      });
      const fits = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.005' } });
      expect(fits.status).toBe(201);
      expect(fits.body.scopes[0].remaining).toBe('0.000000');
      for (const id of [ids[1], ids[2], fits.body.id]) await h.service('POST', `/v1/reservations/${id}/release`);
      expect(await h.scope('team', team)).toMatchObject({ reserved: '0.000000', remaining: '876543210987.655000' });
    });

    it('a large budget given as a JSON number is exact too', async () => {
      const team = uniqueId('team');
      const put = await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: 999999999999.99 });
      expect(put.body.max_budget).toBe('999999999999.990000');
      const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: 0.01 } });
      expect(held.body.scopes[0].remaining).toBe('999999999999.980000');
      await h.service('POST', `/v1/reservations/${held.body.id}/release`);
    });
  });

  describe('digits a double cannot hold', () => {
    it('a JSON number with 21 decimal places is held and charged to the last digit', async () => {
      const key = uniqueId('key');
      const held = await h.service('POST', '/v1/reservations', `{"scopes":{"key":"${key}"},"estimate":{"cost":0.100000000000000000001}}`);
      expect(held.status).toBe(201);
      expect(held.body.reserved_cost).toBe('0.100000000000000000001');
      expect(held.body.scopes[0].reserved).toBe('0.100000000000000000001');
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, '{"cost":0.100000000000000000001}');
      expect(settled.status).toBe(200);
      expect(settled.body).toMatchObject({ actual_cost: '0.100000000000000000001', released_cost: '0.000000' });
      expect((await h.scope('key', key)).spend).toBe('0.100000000000000000001');
    });

    it('a budget of 0.1 refuses a hold 1e-21 above it and admits 0.1', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, '{"max_budget":0.1}');
      const over = await h.service('POST', '/v1/reservations', `{"scopes":{"team":"${team}"},"estimate":{"cost":0.100000000000000000001}}`);
      expect(over.status).toBe(429);
      expect(over.body.error).toMatchObject({ type: 'budget_exceeded', max_budget: '0.100000', requested: '0.100000000000000000001' });
      const exact = await h.service('POST', '/v1/reservations', `{"scopes":{"team":"${team}"},"estimate":{"cost":0.1000000000000000000000}}`);
      expect(exact.status).toBe(201);
      expect(exact.body.scopes[0]).toMatchObject({ reserved: '0.100000', remaining: '0.000000' });
      await h.service('POST', `/v1/reservations/${exact.body.id}/release`);
    });

    it('a budget with more digits than a double is stored exactly', async () => {
      const team = uniqueId('team');
      const put = await h.admin('PUT', `/v1/limits/team/${team}`, '{"max_budget":12345678901234567.25}');
      expect(put.status).toBe(200);
      expect(put.body.max_budget).toBe('12345678901234567.250000');
    });
  });

  describe('amounts in exponent form', () => {
    it('"1e-7" strings are read exactly everywhere an amount is', async () => {
      const team = uniqueId('team');
      const put = await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1E-6', soft_budget: '5e-7' });
      expect(put.body).toMatchObject({ max_budget: '0.000001', soft_budget: '0.0000005' });
      const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '1e-7' } });
      expect(held.status).toBe(201);
      expect(held.body).toMatchObject({ reserved_cost: '0.0000001' });
      expect(held.body.scopes[0]).toMatchObject({ reserved: '0.0000001', remaining: '0.0000009' });
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '5e-8' });
      expect(settled.body).toMatchObject({ actual_cost: '0.00000005', released_cost: '0.00000005' });
      expect(await h.scope('team', team)).toMatchObject({ spend: '0.00000005', remaining: '0.00000095' });
      // 0.00000095 is 9.5 holds of 1e-7: nine fit, the tenth does not.
      const ids: string[] = [];
      for (let i = 0; i < 9; i++) {
        const more = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '1.0e-7' } });
        expect(more.status).toBe(201);
        ids.push(more.body.id);
      }
      const tenth = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '10e-8' } });
      expect(tenth.status).toBe(429);
      expect(tenth.body.error).toMatchObject({ spend: '0.00000005', reserved: '0.0000009', requested: '0.0000001' });
      for (const id of ids) await h.service('POST', `/v1/reservations/${id}/release`);
    });

    it('rejects an amount that is not a decimal, with the field path', async () => {
      const bad = await h.service('POST', '/v1/reservations', { scopes: { key: uniqueId('key') }, estimate: { cost: '1e-7x' } });
      expect(bad.status).toBe(400);
      expect(bad.body.error.issues.map((i: { path: string }) => i.path)).toContain('estimate.cost');
      const negative = await h.service('POST', '/v1/reservations', { scopes: { key: uniqueId('key') }, estimate: { cost: '-1e-7' } });
      expect(negative.status).toBe(400);
      expect(negative.body.error.issues.map((i: { path: string }) => i.path)).toContain('estimate.cost');
    });
  });

  describe('exactly at budget', () => {
    it('a budget of 1.00 admits ten holds of 0.10 and refuses the eleventh, even a zero one', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1.00' });
      const ids: string[] = [];
      for (let i = 1; i <= 10; i++) {
        const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: i % 2 === 0 ? '0.10' : 0.1 } });
        expect(held.status).toBe(201);
        ids.push(held.body.id);
        expect(held.body.scopes[0].reserved).toBe(`${(i / 10).toFixed(1)}00000`);
      }
      expect(await h.scope('team', team)).toMatchObject({ reserved: '1.000000', remaining: '0.000000', in_flight: 10 });
      const eleventh = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.10' } });
      expect(eleventh.status).toBe(429);
      expect(eleventh.body.error).toMatchObject({
        type: 'budget_exceeded', scope: { kind: 'team', id: team },
        max_budget: '1.000000', spend: '0.000000', reserved: '1.000000', requested: '0.100000',
      });
      // A scope whose spend + reserved has reached max_budget refuses everything.
      const zero = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0' } });
      expect(zero.status).toBe(429);
      expect(zero.body.error.type).toBe('budget_exceeded');

      for (const id of ids) await h.service('POST', `/v1/reservations/${id}/settle`, { cost: 0.1 });
      expect(await h.scope('team', team)).toMatchObject({ spend: '1.000000', reserved: '0.000000', remaining: '0.000000', in_flight: 0 });
      const after = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.000001' } });
      expect(after.status).toBe(429);
      expect(after.body.error).toMatchObject({ spend: '1.000000', reserved: '0.000000' });
    });

    it('a hold of exactly what remains fits; a hold one millionth more does not', async () => {
      const team = uniqueId('team');
      await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '2.5' });
      await reserveAndSettle({ team }, '1.2', '1.2');
      const over = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '1.300001' } });
      expect(over.status).toBe(429);
      const exact = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '1.3' } });
      expect(exact.status).toBe(201);
      expect(exact.body.scopes[0]).toMatchObject({ spend: '1.200000', reserved: '1.300000', remaining: '0.000000' });
      await h.service('POST', `/v1/reservations/${exact.body.id}/release`);
    });
  });
});
