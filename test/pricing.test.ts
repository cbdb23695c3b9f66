import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../lib/config.ts';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, uniqueId } from './support/harness.ts';

// Models here get names of their own, so their input is counted by the byte bound: a message "hi" is
// 2 bytes + 4 framing + 3 reply priming = 9 input tokens.
const HI = [{ role: 'user', content: 'hi' }];
/** A user message whose text makes the request's input exactly `tokens` (byte bound: text + 7). */
const messagesOf = (tokens: number) => [{ role: 'user', content: 'x'.repeat(tokens - 7) }];

describe.each(backends)('pricing rules (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  const putModel = async (entry: Record<string, unknown>, name = uniqueId('model')) => {
    const put = await h.admin('PUT', `/v1/models/${name}`, entry);
    expect(put.status).toBe(200);
    return name;
  };
  const reserve = (body: Record<string, unknown>) =>
    h.service('POST', '/v1/reservations', { scopes: { key: uniqueId('key') }, ...body });
  const settle = (id: string, body: Record<string, unknown>) => h.service('POST', `/v1/reservations/${id}/settle`, body);

  describe('prices that depend on the prompt size', () => {
    // Shaped like gemini-2.5-pro: every rate doubles-ish past 200k prompt tokens.
    const longContext = {
      mode: 'chat', max_input_tokens: 1048576, max_output_tokens: 65535,
      input_cost_per_token: '0.00000125', output_cost_per_token: '0.00001', cache_read_input_token_cost: '0.000000125',
      input_cost_per_token_above_200k_tokens: '0.0000025', output_cost_per_token_above_200k_tokens: '0.000015',
      cache_read_input_token_cost_above_200k_tokens: '0.00000025',
    };

    it('a prompt of exactly 200k tokens is billed at the base rates; one more token and every token moves up', async () => {
      const name = await putModel(longContext);
      const at = await reserve({ model: name, request: { messages: messagesOf(200000), max_tokens: 1000 } });
      expect(at.status).toBe(201);
      // 200000 × 0.00000125 + 1000 × 0.00001 = 0.25 + 0.01
      expect(at.body).toMatchObject({ reserved_cost: '0.260000', estimate: { input_tokens: 200000, output_tokens: 1000 } });
      expect(at.body.estimate.price_tier).toBeUndefined();

      const past = await reserve({ model: name, request: { messages: messagesOf(200001), max_tokens: 1000 } });
      // 200001 × 0.0000025 + 1000 × 0.000015 = 0.5000025 + 0.015
      expect(past.body).toMatchObject({
        reserved_cost: '0.5150025',
        estimate: { input_tokens: 200001, output_tokens: 1000, price_tier: 'above_200k_tokens' },
      });
    });

    it('settle picks the tier from the whole prompt, cached tokens included, and prices cache reads at the tier\'s rate', async () => {
      const name = await putModel(longContext);
      const small = await reserve({ model: name, request: { messages: HI, max_tokens: 10 } });
      // Gemini: promptTokenCount includes the 150000 cached; 250000 prompt tokens in all → above 200k.
      const settled = await settle(small.body.id, {
        usage: { usageMetadata: { promptTokenCount: 250000, cachedContentTokenCount: 150000, candidatesTokenCount: 2000 } },
      });
      expect(settled.status).toBe(200);
      // 100000 × 0.0000025 + 150000 × 0.00000025 + 2000 × 0.000015 = 0.25 + 0.0375 + 0.03
      expect(settled.body).toMatchObject({ actual_cost: '0.317500', cost_source: 'usage' });

      const under = await reserve({ model: name, request: { messages: HI, max_tokens: 10 } });
      const base = await settle(under.body.id, {
        usage: { usageMetadata: { promptTokenCount: 180000, cachedContentTokenCount: 150000, candidatesTokenCount: 2000 } },
      });
      // 30000 × 0.00000125 + 150000 × 0.000000125 + 2000 × 0.00001 = 0.0375 + 0.01875 + 0.02
      expect(base.body.actual_cost).toBe('0.076250');
    });

    it('tiered_pricing: the tier whose range holds the prompt; past every range, the last tier', async () => {
      // Shaped like dashscope/qwen-flash in LiteLLM's file.
      const name = await putModel({
        mode: 'chat', max_output_tokens: 32768,
        tiered_pricing: [
          { input_cost_per_token: 5e-8, output_cost_per_token: 4e-7, range: [0, 256000.0] },
          { input_cost_per_token: 2.5e-7, output_cost_per_token: 2e-6, range: [256000.0, 1000000.0] },
        ],
      });
      const first = await reserve({ model: name, request: { messages: messagesOf(256000), max_tokens: 1000 } });
      // 256000 × 0.00000005 + 1000 × 0.0000004 = 0.0128 + 0.0004
      expect(first.body).toMatchObject({ reserved_cost: '0.013200', estimate: { price_tier: 'tiered_pricing[0]' } });
      const second = await reserve({ model: name, request: { messages: messagesOf(256001), max_tokens: 1000 } });
      // 256001 × 0.00000025 + 1000 × 0.000002 = 0.06400025 + 0.002
      expect(second.body).toMatchObject({ reserved_cost: '0.06600025', estimate: { price_tier: 'tiered_pricing[1]' } });
      const beyond = await reserve({ model: name, request: { messages: messagesOf(1000001), max_tokens: 1000 } });
      // 1000001 × 0.00000025 + 0.002
      expect(beyond.body).toMatchObject({ reserved_cost: '0.25200025', estimate: { price_tier: 'tiered_pricing[1]' } });

      const settled = await settle(first.body.id, { usage: { prompt_tokens: 300000, completion_tokens: 100 } });
      // 300000 × 0.00000025 + 100 × 0.000002 = 0.075 + 0.0002
      expect(settled.body.actual_cost).toBe('0.075200');
    });

    it('the starter gemini-2.5-pro prices a prompt past 200k at its long-context rates', async () => {
      const held = await reserve({ model: 'vertex_ai/gemini-2.5-pro', request: { messages: messagesOf(200001), max_tokens: 100 } });
      // 200001 × 0.0000025 + 100 × 0.000015 = 0.5000025 + 0.0015
      expect(held.body).toMatchObject({ reserved_cost: '0.5015025', estimate: { price_tier: 'above_200k_tokens', price_entry: 'gemini-2.5-pro' } });
    });

    it('a prompt is clamped to the model\'s context before its tier is chosen', async () => {
      // claude-sonnet-4-5 reads at most 200000 tokens, so no request to it can reach the above-200k rates.
      const held = await reserve({ model: 'claude-sonnet-4-5', request: { messages: messagesOf(300000), max_tokens: 100 } });
      // 200000 × 0.000003 + 100 × 0.000015 = 0.6 + 0.0015
      expect(held.body).toMatchObject({ reserved_cost: '0.601500', estimate: { input_tokens: 200000 } });
      expect(held.body.estimate.price_tier).toBeUndefined();
    });
  });

  describe('how each number was reached', () => {
    it('output tokens from max_tokens, the model maximum, or the default', async () => {
      const name = await putModel({ mode: 'chat', max_output_tokens: 8192, input_cost_per_token: '0.000001', output_cost_per_token: '0.000002' });
      expect((await reserve({ model: name, request: { messages: HI, max_tokens: 100 } })).body.estimate)
        .toMatchObject({ output_tokens: 100, output_tokens_source: 'max_tokens', source: 'request' });
      expect((await reserve({ model: name, request: { messages: HI, max_tokens: 100000 } })).body.estimate)
        .toMatchObject({ output_tokens: 8192, output_tokens_source: 'model_max' });
      // No max_tokens on a model that writes at most 8192: the model's maximum is the bound.
      expect((await reserve({ model: name, request: { messages: HI } })).body.estimate)
        .toMatchObject({ output_tokens: 8192, output_tokens_source: 'model_max' });
      const big = await putModel({ mode: 'chat', max_output_tokens: 128000, input_cost_per_token: '0.000001', output_cost_per_token: '0.000002' });
      expect((await reserve({ model: big, request: { messages: HI } })).body.estimate)
        .toMatchObject({ output_tokens: 16384, output_tokens_source: 'default' });
    });

    it('GET /v1/reservations/{id} shows the entry and prices used, so a charge can be checked by hand', async () => {
      const held = await reserve({ model: 'openrouter/openai/gpt-4o', request: { messages: HI, max_tokens: 10 } });
      expect(held.status).toBe(201);
      const read = await h.service('GET', `/v1/reservations/${held.body.id}`);
      expect(read.body).toMatchObject({
        model: 'openrouter/openai/gpt-4o',
        estimate: { price_entry: 'gpt-4o', output_tokens: 10 },
        price: { input_cost_per_token: '0.0000025', output_cost_per_token: '0.00001', cache_read_input_token_cost: '0.00000125' },
      });
    });
  });

  describe('names as users write them', () => {
    it('drops leading provider segments one at a time and takes the longest name that has an entry', async () => {
      const base = uniqueId('fam');
      await putModel({ mode: 'chat', input_cost_per_token: '0.000001', output_cost_per_token: '0.000001' }, base);
      await putModel({ mode: 'chat', input_cost_per_token: '0.000002', output_cost_per_token: '0.000002' }, `azure/${base}`);
      const names = async (written: string) => (await reserve({ model: written, request: { messages: HI, max_tokens: 1 } })).body.estimate.price_entry;
      expect(await names(`openrouter/azure/${base}`)).toBe(`azure/${base}`);
      expect(await names(`openrouter/openai/${base}`)).toBe(base);
      expect(await names(`a/b/c/${base}`)).toBe(base);
      expect((await h.service('GET', `/v1/models/openrouter/azure/${base}`)).body.name).toBe(`azure/${base}`);
    });
  });

  describe('aliases: a bare name that the table holds only under a provider prefix', () => {
    const held = async (model: string) => (await reserve({ model, request: { messages: HI, max_tokens: 100 } })).body;

    it('mistral-large-latest, deepseek-chat, llama-3.3-70b-versatile price as the starter table\'s prefixed entries', async () => {
      // 9 × 0.0000005 + 100 × 0.0000015
      expect(await held('mistral-large-latest')).toMatchObject({
        reserved_cost: '0.0001545',
        estimate: { source: 'request', price_entry: 'mistral/mistral-large-latest', price_entry_match: 'alias', alias_candidates: 1 },
      });
      // 9 × 0.00000028 + 100 × 0.00000042
      expect(await held('deepseek-chat')).toMatchObject({ reserved_cost: '0.00004452', estimate: { price_entry: 'deepseek/deepseek-chat' } });
      // 9 × 0.00000059 + 100 × 0.00000079
      expect(await held('llama-3.3-70b-versatile')).toMatchObject({ reserved_cost: '0.00008431', estimate: { price_entry: 'groq/llama-3.3-70b-versatile' } });
      // A bare name with slashes of its own: 9 × 0.0000002 + 100 × 0.0000006
      expect(await held('meta-llama/llama-4-maverick-17b-128e-instruct')).toMatchObject({
        reserved_cost: '0.0000618', estimate: { price_entry: 'groq/meta-llama/llama-4-maverick-17b-128e-instruct' },
      });
      expect((await h.service('GET', '/v1/models/deepseek-chat')).body).toMatchObject({ name: 'deepseek/deepseek-chat', output_cost_per_token: '0.00000042' });
      // A name found as written (or without its prefix) says nothing of aliases.
      const direct = await held('openai/gpt-4o');
      expect(direct.estimate.price_entry).toBe('gpt-4o');
      expect(direct.estimate).not.toHaveProperty('price_entry_match');
      expect(direct.estimate).not.toHaveProperty('alias_candidates');
    });

    it('several entries: the highest output price, then input price, then the first name; never the cheapest', async () => {
      const base = uniqueId('alias');
      const price = (input: string, output: string) => ({ mode: 'chat', input_cost_per_token: input, output_cost_per_token: output });
      await putModel(price('0.000009', '0.000001'), `a/${base}`);
      await putModel(price('0.000001', '0.000003'), `b/${base}`);
      await putModel(price('0.000002', '0.000003'), `c/${base}`);
      await putModel(price('0.000002', '0.000003'), `d/x/${base}`);
      await putModel({ mode: 'chat', input_cost_per_token: '0.000001' }, `e/${base}`); // no output price: never preferred
      await putModel(price('0.1', '0.1'), `f/${base}-longer`); // not an entry of this name
      // 9 × 0.000002 + 100 × 0.000003; c/ and d/x/ tie, c/ comes first
      expect(await held(base)).toMatchObject({
        reserved_cost: '0.000318', estimate: { price_entry: `c/${base}`, price_entry_match: 'alias', alias_candidates: 5 },
      });
      // The exact name, when the table has it, wins over every alias.
      await putModel(price('0', '0.000001'), base);
      expect(await held(base)).toMatchObject({ reserved_cost: '0.000100', estimate: { price_entry: base } });
      expect((await held(base)).estimate).not.toHaveProperty('price_entry_match');
    });

    it('a name is matched as written: LIKE wildcards in it are plain characters, and an unknown name still holds the fallback', async () => {
      const base = uniqueId('wild');
      await putModel({ mode: 'chat', input_cost_per_token: '0', output_cost_per_token: '0.000001' }, `p/${base}_1`);
      expect((await held(`${base}_1`)).estimate.price_entry).toBe(`p/${base}_1`);
      for (const written of [`${base}%1`, `${base}%`, `%_1`, `${base}\\_1`, `_1`]) {
        expect(await held(written)).toMatchObject({ reserved_cost: '1.000000', estimate: { source: 'fallback' } });
      }
      // Only whole provider segments: "x" is not an alias of "p/..._1"'s tail.
      expect((await held('1')).estimate.source).toBe('fallback');
    });

    it('the alias lookup reads an index, not the table: EXPLAIN on 3000 entries, generic plan included', async () => {
      const entries: Record<string, Record<string, string>> = {};
      const prefix = uniqueId('bulk');
      for (let i = 0; i < 3000; i++) entries[`${prefix}-${i % 30}/model-${i}`] = { mode: 'chat', input_cost_per_token: '0.000001', output_cost_per_token: '0.000002' };
      expect((await h.admin('POST', '/v1/models/import', entries)).body.imported).toBe(3000);
      expect((await held('model-2999')).estimate).toMatchObject({ price_entry: `${prefix}-29/model-2999`, alias_candidates: 1 });

      const plans = await h.db.transaction(async (tx) => {
        const statement = uniqueId('aliases').replace(/\W/g, '_');
        await tx.query(`prepare ${statement}(text) as select * from spendgate.model_aliases($1)`);
        try {
          const custom = await tx.query<{ 'QUERY PLAN': string }>(`explain execute ${statement}('model-2999')`);
          await tx.query('set local plan_cache_mode = force_generic_plan');
          const generic = await tx.query<{ 'QUERY PLAN': string }>(`explain execute ${statement}('model-2999')`);
          return [custom, generic].map((rows) => rows.map((row) => row['QUERY PLAN']).join('\n'));
        } finally {
          await tx.query(`deallocate ${statement}`);
        }
      });
      for (const plan of plans) {
        expect(plan).toContain('models_reversed_name');
        expect(plan).not.toMatch(/Seq Scan/);
      }
      expect(plans[1]).toContain('$1');
    });
  });

  describe('audio', () => {
    it('transcription holds seconds × the per-second price, and settles from the duration usage', async () => {
      const held = await reserve({ model: 'whisper-1', request: {}, estimate: { seconds: 60 } });
      expect(held.status).toBe(201);
      // 60 × 0.0001
      expect(held.body).toMatchObject({ reserved_cost: '0.006000', reserved_tokens: 0, estimate: { source: 'request' } });
      const settled = await settle(held.body.id, { usage: { type: 'duration', seconds: 12.5 } });
      expect(settled.status).toBe(200);
      // 12.5 × 0.0001
      expect(settled.body).toMatchObject({ actual_cost: '0.001250', actual_tokens: 0, cost_source: 'usage' });
    });

    it('transcription without a length holds the fallback, never nothing', async () => {
      const held = await reserve({ model: 'whisper-1', request: {} });
      expect(held.body).toMatchObject({ reserved_cost: '1.000000', estimate: { source: 'fallback' } });
    });

    it('speech holds characters × the per-character price', async () => {
      const held = await reserve({ model: 'tts-1', request: { model: 'tts-1', input: 'Hello, world!', voice: 'alloy' } });
      // 13 × 0.000015
      expect(held.body).toMatchObject({ reserved_cost: '0.000195', estimate: { input_tokens: 0, output_tokens: 0 } });
      const settled = await settle(held.body.id, { usage: { characters: 13 } });
      expect(settled.body.actual_cost).toBe('0.000195');
    });

    it('a usage of seconds mixed with token counts is refused, naming the mix', async () => {
      const held = await reserve({ model: 'whisper-1', request: {}, estimate: { seconds: 1 } });
      const mixed = await settle(held.body.id, { usage: { seconds: 3, input_tokens: 5 } });
      expect(mixed.status).toBe(400);
      expect(mixed.body.error.issues[0]).toMatchObject({ path: 'usage' });
      const negative = await settle(held.body.id, { usage: { seconds: -3 } });
      expect(negative.status).toBe(400);
      expect(negative.body.error.issues[0]).toMatchObject({ path: 'usage.seconds' });
      expect((await h.service('GET', `/v1/reservations/${held.body.id}`)).body.status).toBe('held');
    });
  });
});

describe.each(backends)('SPENDGATE_MAX_HOLD (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend, { env: { SPENDGATE_MAX_HOLD: '0.05' } });
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  it('bounds any single hold, whatever it was estimated from, and says so', async () => {
    const key = uniqueId('key');
    const estimated = await h.service('POST', '/v1/reservations', { scopes: { key }, model: 'gpt-4o', request: { messages: HI } });
    expect(estimated.body).toMatchObject({ reserved_cost: '0.050000', estimate: { source: 'request', capped: true } });
    const caller = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '3' } });
    expect(caller.body).toMatchObject({ reserved_cost: '0.050000', estimate: { source: 'caller', capped: true } });
    const small = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.01' } });
    expect(small.body.reserved_cost).toBe('0.010000');
    expect(small.body.estimate.capped).toBeUndefined();
    // The cap bounds the hold, not the charge: the settle charges what was spent.
    const settled = await h.service('POST', `/v1/reservations/${caller.body.id}/settle`, { cost: '2.5' });
    expect(settled.body.actual_cost).toBe('2.500000');
  });

  it('a cap that is not a positive decimal stops the server from starting', () => {
    const tokens = { SPENDGATE_ADMIN_TOKEN: 'a'.repeat(16), SPENDGATE_SERVICE_TOKEN: 's'.repeat(16) };
    for (const bad of ['0', '-1', 'lots', '0.000']) {
      expect(() => loadConfig({ ...tokens, SPENDGATE_MAX_HOLD: bad }, { allowGeneratedTokens: false })).toThrow(/SPENDGATE_MAX_HOLD/);
    }
    expect(loadConfig({ ...tokens, SPENDGATE_MAX_HOLD: '2.50' }, { allowGeneratedTokens: false }).maxHold).toBe('2.5');
    expect(loadConfig(tokens, { allowGeneratedTokens: false }).maxHold).toBeNull();
  });
});
