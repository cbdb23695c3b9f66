import { readFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, uniqueId } from './support/harness.ts';
import { encodingForModel } from '../lib/tokenizer.ts';

// {messages: [{role: "user", content: "hi"}]}: 4 per message + 3 priming + "hi", which is 2 UTF-8 bytes, or
// 1 token for OpenAI models (o200k_base and cl100k_base alike): 9 input tokens, or 8 for OpenAI models.
const HI = [{ role: 'user', content: 'hi' }];

const priceFile = new URL('../../shared/data/litellm_model_prices.json', import.meta.url);

/** Exact decimal arithmetic for expected values: amounts as bigint in units of 1e-30. */
const SCALE = 30;
function units(value: number | string): bigint {
  const text = typeof value === 'number' ? String(value) : value;
  const match = /^(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/i.exec(text);
  if (!match) throw new Error(`not a decimal: ${text}`);
  const [, whole = '', fraction = '', exponent = '0'] = match;
  const shift = SCALE + Number(exponent) - fraction.length;
  const digits = BigInt(whole + fraction);
  return shift >= 0 ? digits * 10n ** BigInt(shift) : digits / 10n ** BigInt(-shift);
}
/** As the API writes money: at least six decimal places, more when the value has them. */
function money(amount: bigint): string {
  const text = amount.toString().padStart(SCALE + 1, '0');
  const whole = text.slice(0, -SCALE);
  const fraction = text.slice(-SCALE).replace(/0+$/, '').padEnd(6, '0');
  return `${whole}.${fraction}`;
}

describe.each(backends)('models and pricing (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  const reserve = (model: string, request?: Record<string, unknown>) =>
    h.service('POST', '/v1/reservations', { scopes: { key: uniqueId('key') }, model, ...(request ? { request } : {}) });

  async function putModel(entry: Record<string, unknown>, prefix = 'model'): Promise<string> {
    const name = uniqueId(prefix);
    const put = await h.admin('PUT', `/v1/models/${encodeURIComponent(name)}`, entry);
    expect(put.status).toBe(200);
    return name;
  }

  describe('price table', () => {
    it('PUT then GET an entry: prices as decimal strings, unknown fields kept', async () => {
      const name = uniqueId('acme-chat');
      const entry = {
        litellm_provider: 'acme', mode: 'chat', max_input_tokens: 200000, max_output_tokens: 4096,
        input_cost_per_token: 0.0000025, output_cost_per_token: '0.0000125', cache_read_input_token_cost: 1.25e-7,
        input_cost_per_audio_token: '0.0000375',
        supports_vision: true, supported_regions: ['eu', 'us'], search_context_cost_per_query: { search_context_size_low: 0.03 },
      };
      const put = await h.admin('PUT', `/v1/models/${name}`, entry);
      expect(put.status).toBe(200);
      const expected = {
        name, litellm_provider: 'acme', mode: 'chat', max_input_tokens: 200000, max_output_tokens: 4096,
        input_cost_per_token: '0.0000025', output_cost_per_token: '0.0000125', cache_read_input_token_cost: '0.000000125',
        input_cost_per_audio_token: '0.0000375',
        supports_vision: true, supported_regions: ['eu', 'us'], search_context_cost_per_query: { search_context_size_low: 0.03 },
        updated_at: '2026-03-10T12:00:00.000000Z',
      };
      expect(put.body).toEqual(expected);
      const read = await h.service('GET', `/v1/models/${name}`);
      expect(read.status).toBe(200);
      expect(read.body).toEqual(expected);
    });

    it('PUT replaces the entry whole', async () => {
      const name = await putModel({ mode: 'chat', input_cost_per_token: '0.0000011', output_cost_per_token: '0.0000022', old_field: 1 });
      const put = await h.admin('PUT', `/v1/models/${name}`, { mode: 'chat', input_cost_per_token: '0.0000033' });
      expect(put.status).toBe(200);
      const read = await h.service('GET', `/v1/models/${name}`);
      expect(read.body).toEqual({ name, mode: 'chat', input_cost_per_token: '0.0000033', updated_at: '2026-03-10T12:00:00.000000Z' });
    });

    it('404 for a model not in the table; 400 naming the field for a negative or non-decimal price; 403 for service', async () => {
      const missing = await h.service('GET', `/v1/models/${uniqueId('nope')}`);
      expect(missing.status).toBe(404);
      expect(missing.body.error.type).toBe('not_found');

      const name = uniqueId('bad');
      const negative = await h.admin('PUT', `/v1/models/${name}`, { mode: 'chat', input_cost_per_token: -0.000001 });
      expect(negative.status).toBe(400);
      expect(negative.body.error.type).toBe('invalid_request');
      expect(negative.body.error.issues.map((i: { path: string }) => i.path)).toContain('input_cost_per_token');
      const text = await h.admin('PUT', `/v1/models/${name}`, { mode: 'chat', output_cost_per_token: 'cheap' });
      expect(text.status).toBe(400);
      expect(text.body.error.issues.map((i: { path: string }) => i.path)).toContain('output_cost_per_token');
      const other = await h.admin('PUT', `/v1/models/${name}`, { mode: 'chat', input_cost_per_audio_token: -1 });
      expect(other.status).toBe(400);
      expect(other.body.error.issues.map((i: { path: string }) => i.path)).toContain('input_cost_per_audio_token');
      expect((await h.service('GET', `/v1/models/${name}`)).status).toBe(404);

      const denied = await h.service('PUT', `/v1/models/${name}`, { mode: 'chat', input_cost_per_token: '0.000001' });
      expect(denied.status).toBe(403);
      expect((await h.service('GET', `/v1/models/${name}`)).status).toBe(404);
    });
  });

  describe('name resolution', () => {
    it('openai/gpt-4o resolves to gpt-4o, for GET and for a reserve', async () => {
      const read = await h.service('GET', '/v1/models/openai%2Fgpt-4o');
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ name: 'gpt-4o', mode: 'chat', input_cost_per_token: '0.0000025', max_output_tokens: 16384 });

      const held = await reserve('openai/gpt-4o', { messages: HI, max_tokens: 256 });
      expect(held.status).toBe(201);
      // 8 × 0.0000025 + 256 × 0.00001, as for gpt-4o itself: the prefix is read for the tokenizer too
      expect(held.body).toMatchObject({ model: 'openai/gpt-4o', reserved_cost: '0.002580', estimate: { input_tokens: 8, output_tokens: 256, source: 'request' } });
    });

    it('an exact name wins over the name without its prefix', async () => {
      const base = uniqueId('resolve');
      expect((await h.admin('PUT', `/v1/models/${base}`, { mode: 'chat', input_cost_per_token: '0', output_cost_per_token: '0.001' })).status).toBe(200);
      const prefixed = await h.admin('PUT', `/v1/models/${encodeURIComponent(`acme/${base}`)}`, { mode: 'chat', input_cost_per_token: '0', output_cost_per_token: '0.002' });
      expect(prefixed.status).toBe(200);
      expect(prefixed.body.name).toBe(`acme/${base}`);

      expect((await reserve(`acme/${base}`, { messages: HI, max_tokens: 10 })).body.reserved_cost).toBe('0.020000');
      expect((await reserve(`other/${base}`, { messages: HI, max_tokens: 10 })).body.reserved_cost).toBe('0.010000');
      expect((await reserve(base, { messages: HI, max_tokens: 10 })).body.reserved_cost).toBe('0.010000');
    });

    it('a name with slashes may be written in the path as it is, unencoded', async () => {
      const name = `${uniqueId('prov')}/family/model`;
      const put = await h.admin('PUT', `/v1/models/${name}`, { mode: 'chat', input_cost_per_token: '0.000001', output_cost_per_token: '0.000002' });
      expect(put.status).toBe(200);
      expect(put.body.name).toBe(name);
      const plain = await h.service('GET', `/v1/models/${name}`);
      const encoded = await h.service('GET', `/v1/models/${encodeURIComponent(name)}`);
      expect(plain.status).toBe(200);
      expect(plain.body).toEqual(encoded.body);
      expect(plain.body.output_cost_per_token).toBe('0.000002');
      expect((await h.service('GET', '/v1/models/openai/gpt-4o')).body.name).toBe('gpt-4o');
    });
  });

  describe('reserve estimates', () => {
    it('gpt-4o without max_tokens holds 16384 output tokens', async () => {
      const held = await reserve('gpt-4o', { messages: HI });
      expect(held.status).toBe(201);
      // 8 × 0.0000025 + 16384 × 0.00001 = 0.00002 + 0.16384
      expect(held.body).toMatchObject({ reserved_cost: '0.163860', reserved_tokens: 16392, estimate: { input_tokens: 8, output_tokens: 16384, source: 'request' } });
    });

    it('a hostile max_tokens is clamped to the model\'s max_output_tokens', async () => {
      const held = await reserve('gpt-4o', { messages: HI, max_tokens: 999999999 });
      expect(held.status).toBe(201);
      expect(held.body).toMatchObject({ reserved_cost: '0.163860', estimate: { input_tokens: 8, output_tokens: 16384 } });
    });

    it('a 128000-token model: max_tokens 999999999 → 128000; the larger output limit counts; n multiplies', async () => {
      const name = await putModel({ mode: 'chat', max_input_tokens: 200000, max_output_tokens: 128000, input_cost_per_token: '0.000001', output_cost_per_token: '0.000002' });
      const hostile = await reserve(name, { messages: HI, max_tokens: 999999999 });
      // 9 × 0.000001 + 128000 × 0.000002
      expect(hostile.body).toMatchObject({ reserved_cost: '0.256009', estimate: { input_tokens: 9, output_tokens: 128000, source: 'request' } });
      const completion = await reserve(name, { messages: HI, max_completion_tokens: 999999999 });
      expect(completion.body).toMatchObject({ reserved_cost: '0.256009', estimate: { output_tokens: 128000 } });
      const both = await reserve(name, { messages: HI, max_tokens: 1000, max_completion_tokens: 2000 });
      expect(both.body).toMatchObject({ reserved_cost: '0.004009', estimate: { output_tokens: 2000 } });
      // Without any limit: 16384, even though the model could write more.
      const none = await reserve(name, { messages: HI });
      expect(none.body).toMatchObject({ reserved_cost: '0.032777', estimate: { output_tokens: 16384 } });
      const three = await reserve(name, { messages: HI, max_tokens: 100, n: 3 });
      expect(three.body).toMatchObject({ reserved_cost: '0.000609', estimate: { output_tokens: 300 } });
    });

    it('dall-e-3: n × the per-image price', async () => {
      const three = await reserve('dall-e-3', { prompt: 'x', n: 3 });
      expect(three.status).toBe(201);
      expect(three.body).toMatchObject({ reserved_cost: '0.120000', estimate: { output_tokens: 0, source: 'request' } });
      const one = await reserve('dall-e-3', { prompt: 'a cat' });
      expect(one.body.reserved_cost).toBe('0.040000');
      const settled = await h.service('POST', `/v1/reservations/${three.body.id}/settle`, { images: 2 });
      expect(settled.body).toMatchObject({ actual_cost: '0.080000', released_cost: '0.040000', cost_source: 'usage' });
    });

    it('an image model with both per-image prices reserves one of them, never their sum', async () => {
      const both = await putModel({ mode: 'image_generation', input_cost_per_image: '0.01', output_cost_per_image: '0.05' });
      const held = await reserve(both, { prompt: 'x', n: 2 });
      expect(held.body.reserved_cost).toBe('0.100000');
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { images: 2 });
      expect(settled.body.actual_cost).toBe('0.100000');

      const edit = await putModel({ mode: 'image_edit', input_cost_per_image: '0.02' });
      expect((await reserve(edit, { prompt: 'x', n: 2 })).body.reserved_cost).toBe('0.040000');
    });

    it('a per-pixel image model (LiteLLM\'s DALL·E 3 HD: output_cost_per_pixel 0.0 beside its input price) holds and settles pixels × its price', async () => {
      const file = JSON.parse(await readFile(priceFile, 'utf8')) as Record<string, Record<string, unknown>>;
      for (const name of ['hd/1024-x-1024/dall-e-3', 'hd/1024-x-1792/dall-e-3']) {
        expect(file[name]).toMatchObject({ mode: 'image_generation', output_cost_per_pixel: 0 });
        expect((await h.admin('PUT', `/v1/models/${name}`, file[name])).status).toBe(200);
      }
      const held = await reserve('hd/1024-x-1024/dall-e-3', { prompt: 'a cat', n: 2, size: '1024x1024' });
      expect(held.status).toBe(201);
      // 2 × 1024 × 1024 × 0.00000007629
      expect(held.body).toMatchObject({
        reserved_cost: '0.15999172608',
        estimate: { pixels_per_image: 1048576, output_tokens: 0, source: 'request', price_entry: 'hd/1024-x-1024/dall-e-3' },
      });
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { images: 2 });
      expect(settled.body).toMatchObject({ actual_cost: '0.15999172608', released_cost: '0.000000', cost_source: 'usage' });
      // Settled at the size held: one image of the two, half the hold.
      const again = await reserve('hd/1024-x-1024/dall-e-3', { prompt: 'a cat', n: 2, size: '1024x1024' });
      const one = await h.service('POST', `/v1/reservations/${again.body.id}/settle`, { images: 1 });
      expect(one.body).toMatchObject({ actual_cost: '0.07999586304', released_cost: '0.07999586304', cost_source: 'usage' });

      // The requested size is the one priced: 1024 × 1792 × 0.00000006539
      const tall = await reserve('hd/1024-x-1792/dall-e-3', { prompt: 'a cat', size: '1024x1792' });
      expect(tall.body).toMatchObject({ reserved_cost: '0.11999117312', estimate: { pixels_per_image: 1835008 } });
      // No size: 1024 × 1024 × 0.00000006539
      const unsized = await reserve('hd/1024-x-1792/dall-e-3', { prompt: 'a cat' });
      expect(unsized.body).toMatchObject({ reserved_cost: '0.06856638464', estimate: { pixels_per_image: 1048576 } });
    });

    it('an image\'s price is the first non-zero one; an explicit 0 beside a real price is not the price, and only all zeros are free', async () => {
      const hold = async (entry: Record<string, unknown>) => (await reserve(await putModel({ mode: 'image_generation', ...entry }), { prompt: 'x', n: 2 })).body;
      // A 0 output price beside a real input one, per image or per pixel.
      expect((await hold({ input_cost_per_image: '0.02', output_cost_per_image: 0 })).reserved_cost).toBe('0.040000');
      expect((await hold({ input_cost_per_pixel: '0.00000001', output_cost_per_pixel: 0 })).reserved_cost).toBe('0.02097152');
      // A 0 per-image price beside a real per-pixel one: 2 × 1048576 × 0.00000001
      expect((await hold({ output_cost_per_image: 0, input_cost_per_pixel: '0.00000001' })).reserved_cost).toBe('0.02097152');
      // Both per-image prices given: the output one, never the sum.
      expect((await hold({ input_cost_per_image: '0.02', output_cost_per_image: '0.03', input_cost_per_pixel: '1' })).reserved_cost).toBe('0.060000');
      // Every price given is 0: free, not unknown.
      for (const free of [{ input_cost_per_pixel: 0 }, { input_cost_per_image: 0, output_cost_per_image: 0 }, { output_cost_per_image: 0 }]) {
        expect(await hold(free)).toMatchObject({ reserved_cost: '0.000000', estimate: { source: 'request' } });
      }
      // No image price at all: unknown, the fallback.
      expect(await hold({ input_cost_per_token: '0.000005' })).toMatchObject({ reserved_cost: '1.000000', estimate: { source: 'fallback' } });

      // Settle prices images the same way.
      const name = await putModel({ mode: 'image_edit', input_cost_per_image: '0.02', output_cost_per_image: 0 });
      const held = await reserve(name, { prompt: 'x', n: 2 });
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { images: 3 });
      expect(settled.body).toMatchObject({ actual_cost: '0.060000', cost_source: 'usage' });
    });

    it('an image_url or file part of unknown size holds gpt-4o\'s whole context as input, clamped to that context', async () => {
      const withPart = (part: Record<string, unknown>) =>
        [{ role: 'user', content: [{ type: 'text', text: 'What is in this?' }, part] }];
      const image = { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } };
      const file = { type: 'file', file: { file_id: 'file-abc123' } };
      for (const messages of [withPart(image), withPart(file), [{ role: 'user', content: [image, file, image] }]]) {
        const held = await reserve('gpt-4o', { messages, max_tokens: 100 });
        expect(held.status).toBe(201);
        // The text's tokens + 128000 per part, clamped to gpt-4o's 128000-token context:
        // 128000 × 0.0000025 + 100 × 0.00001 = 0.32 + 0.001
        expect(held.body).toMatchObject({
          reserved_cost: '0.321000', reserved_tokens: 128100, reserved_input_tokens: 128000,
          estimate: { input_tokens: 128000, output_tokens: 100, source: 'request' },
        });
      }
      // Without max_tokens: 128000 × 0.0000025 + 16384 × 0.00001 = 0.32 + 0.16384
      const unbounded = await reserve('gpt-4o', { messages: withPart(image) });
      expect(unbounded.body).toMatchObject({ reserved_cost: '0.483840', estimate: { input_tokens: 128000, output_tokens: 16384 } });
    });

    it('an embedding model holds no output', async () => {
      const held = await reserve('text-embedding-3-small', { input: 'hello world', max_tokens: 500 });
      expect(held.status).toBe(201);
      // "hello world" is 2 cl100k_base tokens: 2 × 0.00000002
      expect(held.body).toMatchObject({ reserved_cost: '0.00000004', reserved_tokens: 2, estimate: { input_tokens: 2, output_tokens: 0, source: 'request' } });
      // "ab" 1 + "cde" 2 tokens: 3 × 0.00000002
      const list = await reserve('text-embedding-3-small', { input: ['ab', 'cde'] });
      expect(list.body).toMatchObject({ reserved_cost: '0.00000006', estimate: { input_tokens: 3, output_tokens: 0 } });
    });

    it('a chat model that also carries per-image prices is still priced by tokens', async () => {
      const name = await putModel({
        mode: 'chat', max_output_tokens: 100, input_cost_per_token: '0.000001', output_cost_per_token: '0.000002',
        input_cost_per_image: '0.5', output_cost_per_image: '0.7',
      });
      const held = await reserve(name, { messages: HI, max_tokens: 30, n: 2 });
      // 9 × 0.000001 + 60 × 0.000002
      expect(held.body).toMatchObject({ reserved_cost: '0.000129', estimate: { input_tokens: 9, output_tokens: 60, source: 'request' } });
    });

    it('output is held at the higher of the output and reasoning rates', async () => {
      const name = await putModel({
        mode: 'chat', input_cost_per_token: '0.000002', output_cost_per_token: '0.000008', output_cost_per_reasoning_token: '0.00001',
      });
      const held = await reserve(name, { messages: HI, max_tokens: 100 });
      // 9 × 0.000002 + 100 × 0.00001
      expect(held.body.reserved_cost).toBe('0.001018');
    });

    it('an explicit 0 price is free, not unknown', async () => {
      const name = await putModel({ mode: 'chat', input_cost_per_token: 0, output_cost_per_token: '0' });
      const held = await reserve(name, { messages: HI, max_tokens: 100 });
      expect(held.body).toMatchObject({ reserved_cost: '0.000000', estimate: { source: 'request' } });
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { usage: { prompt_tokens: 10, completion_tokens: 5 } });
      expect(settled.body).toMatchObject({ actual_cost: '0.000000', cost_source: 'usage' });
    });

    it('a model without output_cost_per_token holds the fallback, and a settle from usage charges that hold', async () => {
      const name = await putModel({ mode: 'chat', input_cost_per_token: '0.000001' });
      const held = await reserve(name, { messages: HI, max_tokens: 100 });
      expect(held.status).toBe(201);
      expect(held.body).toMatchObject({ reserved_cost: '1.000000', estimate: { source: 'fallback' } });
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { usage: { prompt_tokens: 10, completion_tokens: 5 } });
      expect(settled.body).toMatchObject({ actual_cost: '1.000000', released_cost: '0.000000', cost_source: 'hold' });
    });

    it('a model with a reasoning rate but no output_cost_per_token still holds the fallback: the output price is unknown', async () => {
      const name = await putModel({ mode: 'chat', input_cost_per_token: '0.000001', output_cost_per_reasoning_token: '0.00001' });
      const held = await reserve(name, { messages: HI, max_tokens: 100 });
      expect(held.status).toBe(201);
      expect(held.body).toMatchObject({ reserved_cost: '1.000000', estimate: { source: 'fallback' } });
    });

    it('a model missing from the table holds the fallback, never nothing', async () => {
      const held = await reserve(uniqueId('no-such-model'), { messages: HI, max_tokens: 1 });
      expect(held.status).toBe(201);
      expect(held.body).toMatchObject({ reserved_cost: '1.000000', estimate: { source: 'fallback' } });
      const bare = await reserve(uniqueId('no-such-model'));
      expect(bare.body).toMatchObject({ reserved_cost: '1.000000', estimate: { source: 'fallback' } });
    });
  });

  describe('settle from usage', () => {
    it('Anthropic usage: cache reads at the cache-read rate, cache writes at the cache-write rate', async () => {
      const name = await putModel({
        mode: 'chat', input_cost_per_token: '0.000003', output_cost_per_token: '0.000015',
        cache_read_input_token_cost: '0.0000003', cache_creation_input_token_cost: '0.00000375',
      });
      const held = await reserve(name, { messages: HI, max_tokens: 1000 });
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, {
        usage: { input_tokens: 100, output_tokens: 50, cache_read_input_tokens: 1000 },
      });
      // 100 × 0.000003 + 50 × 0.000015 + 1000 × 0.0000003 = 0.0003 + 0.00075 + 0.0003
      expect(settled.body).toMatchObject({ actual_cost: '0.001350', actual_tokens: 150 /* cache reads do not count against TPM */, cost_source: 'usage' });

      const again = await reserve(name, { messages: HI, max_tokens: 1000 });
      const withWrites = await h.service('POST', `/v1/reservations/${again.body.id}/settle`, {
        usage: { input_tokens: 100, output_tokens: 50, cache_read_input_tokens: 1000, cache_creation_input_tokens: 200 },
      });
      // + 200 × 0.00000375
      expect(withWrites.body).toMatchObject({ actual_cost: '0.002100', actual_tokens: 350 /* cache writes count against TPM, cache reads do not */ });
    });

    it('a missing cache rate falls back to the input rate', async () => {
      const name = await putModel({ mode: 'chat', input_cost_per_token: '0.000003', output_cost_per_token: '0.000015' });
      const held = await reserve(name, { messages: HI, max_tokens: 1000 });
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, {
        usage: { input_tokens: 100, output_tokens: 50, cache_read_input_tokens: 1000, cache_creation_input_tokens: 200 },
      });
      // 1300 × 0.000003 + 50 × 0.000015
      expect(settled.body.actual_cost).toBe('0.004650');
    });

    it('OpenAI Chat, OpenAI Responses and Gemini usage of the same call cost the same', async () => {
      const name = await putModel({
        mode: 'chat', input_cost_per_token: '0.000002', output_cost_per_token: '0.000008',
        cache_read_input_token_cost: '0.0000005', output_cost_per_reasoning_token: '0.00001',
      });
      // 600 × 0.000002 + 400 × 0.0000005 + 200 × 0.000008 + 100 × 0.00001 = 0.0012 + 0.0002 + 0.0016 + 0.001
      const usages = [
        { prompt_tokens: 1000, completion_tokens: 300, prompt_tokens_details: { cached_tokens: 400 }, completion_tokens_details: { reasoning_tokens: 100 } },
        { input_tokens: 1000, output_tokens: 300, input_tokens_details: { cached_tokens: 400 }, output_tokens_details: { reasoning_tokens: 100 } },
        { usageMetadata: { promptTokenCount: 1000, candidatesTokenCount: 200, thoughtsTokenCount: 100, cachedContentTokenCount: 400 } },
        { promptTokenCount: 1000, candidatesTokenCount: 200, thoughtsTokenCount: 100, cachedContentTokenCount: 400 },
      ];
      for (const usage of usages) {
        const held = await reserve(name, { messages: HI, max_tokens: 100 });
        expect(held.body.reserved_cost).toBe('0.001018');
        const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { usage });
        expect(settled.status).toBe(200);
        // Above the hold: charged in full.
        expect(settled.body).toMatchObject({ actual_cost: '0.004000', actual_tokens: 900 /* the 400 cached tokens do not count against TPM */, released_cost: '0.000000', cost_source: 'usage' });
      }
    });

    it('an explicit cost wins over usage', async () => {
      const held = await reserve('gpt-4o', { messages: HI, max_tokens: 100 });
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { cost: '0.0001', usage: { prompt_tokens: 100000, completion_tokens: 100 } });
      expect(settled.body).toMatchObject({ actual_cost: '0.000100', cost_source: 'caller', actual_tokens: 100100 });
    });
  });

  describe('with SPENDGATE_UNKNOWN_MODEL_HOLD set', () => {
    it('a configured decimal is the fallback hold', async () => {
      const z = await startHarness(backend, { env: { SPENDGATE_UNKNOWN_MODEL_HOLD: '0.25' } });
      try {
        const unknown = await z.service('POST', '/v1/reservations', { scopes: { key: uniqueId('key') }, model: uniqueId('nope'), request: { messages: HI } });
        expect(unknown.body).toMatchObject({ reserved_cost: '0.250000', estimate: { source: 'fallback' } });
        const name = uniqueId('half-priced');
        await z.admin('PUT', `/v1/models/${name}`, { mode: 'chat', output_cost_per_token: '0.000001' });
        const partial = await z.service('POST', '/v1/reservations', { scopes: { key: uniqueId('key') }, model: name, request: { messages: HI } });
        expect(partial.body).toMatchObject({ reserved_cost: '0.250000', estimate: { source: 'fallback' } });
        await z.expectAuditOk();
      } finally {
        await z.close();
      }
    });

    it('"reject" refuses an unknown model with 400 naming it', async () => {
      const z = await startHarness(backend, { env: { SPENDGATE_UNKNOWN_MODEL_HOLD: 'reject' } });
      try {
        const model = uniqueId('nope');
        const refused = await z.service('POST', '/v1/reservations', { scopes: { key: uniqueId('key') }, model, request: { messages: HI } });
        expect(refused.status).toBe(400);
        expect(refused.body.error.type).toBe('invalid_request');
        expect(refused.body.error.message).toContain(model);
        expect(refused.body.error.issues.map((i: { path: string }) => i.path)).toContain('model');
        const known = await z.service('POST', '/v1/reservations', { scopes: { key: uniqueId('key') }, model: 'gpt-4o', request: { messages: HI, max_tokens: 256 } });
        // 8 × 0.0000025 + 256 × 0.00001
        expect(known.body.reserved_cost).toBe('0.002580');
        await z.expectAuditOk();
      } finally {
        await z.close();
      }
    });
  });

  // Last: the whole-file import rewrites starter entries the tests above rely on.
  describe('import', () => {
    it('one invalid entry is skipped with its reason; the rest are imported', async () => {
      const [bad, good, other] = [uniqueId('imp-bad'), uniqueId('imp-good'), uniqueId('imp-other')];
      const result = await h.admin('POST', '/v1/models/import', {
        [bad]: { mode: 'chat', input_cost_per_token: -0.000001, output_cost_per_token: 0.000002 },
        [good]: { mode: 'chat', input_cost_per_token: 0.000001, output_cost_per_token: '0.000002', brand_new_field: 'kept' },
        [other]: { mode: 'embedding', input_cost_per_token: 1e-8 },
      });
      expect(result.status).toBe(200);
      expect(result.body.imported).toBe(2);
      expect(result.body.skipped).toHaveLength(1);
      expect(result.body.skipped[0].name).toBe(bad);
      expect(result.body.skipped[0].reason).toContain('input_cost_per_token');
      expect(result.body.skipped[0].reason).toMatch(/negative/);

      expect((await h.service('GET', `/v1/models/${bad}`)).status).toBe(404);
      expect((await h.service('GET', `/v1/models/${good}`)).body).toEqual({
        name: good, mode: 'chat', input_cost_per_token: '0.000001', output_cost_per_token: '0.000002', brand_new_field: 'kept',
        updated_at: '2026-03-10T12:00:00.000000Z',
      });
      expect((await h.service('GET', `/v1/models/${other}`)).body.input_cost_per_token).toBe('0.00000001');
      const held = await reserve(good, { messages: HI, max_tokens: 10 });
      expect(held.body).toMatchObject({ reserved_cost: '0.000029', estimate: { source: 'request' } });
    });

    it('imports LiteLLM\'s whole price file in one call; every imported chat model then reserves at its price', async () => {
      const text = await readFile(priceFile, 'utf8');
      const file = JSON.parse(text) as Record<string, Record<string, unknown>>;

      // Not in the starter table: the fallback until imported.
      const before = await reserve('gpt-4-turbo', { messages: HI, max_tokens: 100 });
      expect(before.body).toMatchObject({ reserved_cost: '1.000000', estimate: { source: 'fallback' } });

      const result = await h.admin('POST', '/v1/models/import', text);
      expect(result.status).toBe(200);
      expect(result.body.imported).toBeGreaterThan(2900);
      expect(result.body.imported + result.body.skipped.length).toBe(Object.keys(file).length);
      // Every entry of the file but its documentation entry is a valid entry.
      expect(result.body.skipped.map((s: { name: string }) => s.name)).toEqual(['sample_spec']);
      expect(result.body.skipped.map((s: { name: string }) => s.name)).toContain('sample_spec');
      expect(result.body.skipped.find((s: { name: string }) => s.name === 'sample_spec').reason).toEqual(expect.any(String));
      for (const skip of result.body.skipped) expect(skip.reason).toEqual(expect.any(String));

      const turbo = await reserve('gpt-4-turbo', { messages: HI, max_tokens: 100 });
      expect(turbo.status).toBe(201);
      // 8 (cl100k_base) × 0.00001 + 100 × 0.00003
      expect(turbo.body).toMatchObject({ reserved_cost: '0.003080', estimate: { input_tokens: 8, output_tokens: 100, source: 'request' } });
      // No max_tokens: its max_output_tokens, 4096. 8 × 0.00001 + 4096 × 0.00003
      const capped = await reserve('gpt-4-turbo', { messages: HI });
      expect(capped.body).toMatchObject({ reserved_cost: '0.122960', estimate: { output_tokens: 4096 } });
      const prefixed = await reserve('anthropic/claude-3-opus-20240229', { messages: HI, max_tokens: 10 });
      // 9 (bytes: not an OpenAI model) × 0.000015 + 10 × 0.000075
      expect(prefixed.body).toMatchObject({ reserved_cost: '0.000885', estimate: { source: 'request' } });
      const read = await h.service('GET', '/v1/models/gpt-4-turbo');
      expect(read.body).toMatchObject({ name: 'gpt-4-turbo', input_cost_per_token: '0.00001', output_cost_per_token: '0.00003', supports_vision: true });

      const skipped = new Set(result.body.skipped.map((s: { name: string }) => s.name));
      const chat = Object.entries(file).filter(([name, entry]) =>
        entry.mode === 'chat' && !skipped.has(name) && typeof entry.input_cost_per_token === 'number' && typeof entry.output_cost_per_token === 'number');
      expect(chat.length).toBeGreaterThan(2000);
      const wrong: Array<{ name: string; status: number; got: unknown; expected: string }> = [];
      const check = async ([name, entry]: [string, Record<string, unknown>]) => {
        const maxIn = typeof entry.max_input_tokens === 'number' ? entry.max_input_tokens : Infinity;
        const maxOut = typeof entry.max_output_tokens === 'number' ? entry.max_output_tokens : 16384;
        const input = BigInt(Math.min(encodingForModel(name) === null ? 9 : 8, maxIn));
        const output = BigInt(Math.min(1, maxOut));
        const outRate = [units(entry.output_cost_per_token as number), ...(typeof entry.output_cost_per_reasoning_token === 'number' ? [units(entry.output_cost_per_reasoning_token)] : [])]
          .reduce((a, b) => (a > b ? a : b));
        const expected = money(input * units(entry.input_cost_per_token as number) + output * outRate);
        const held = await reserve(name, { messages: HI, max_tokens: 1 });
        if (held.status !== 201 || held.body.reserved_cost !== expected || held.body.estimate?.source !== 'request') {
          wrong.push({ name, status: held.status, got: held.body.reserved_cost ?? held.body.error, expected });
        }
      };
      // A few at a time: each names its own scope, so they do not contend.
      for (let i = 0; i < chat.length; i += 20) await Promise.all(chat.slice(i, i + 20).map(check));
      expect(wrong).toEqual([]);

      // Every image model priced per pixel holds n × pixels of its size × its price: LiteLLM writes
      // output_cost_per_pixel 0.0 beside the real input price, which is not the price (nor is a 0 per-image one).
      const nonZero = (entry: Record<string, unknown>, field: string) =>
        typeof entry[field] === 'number' && entry[field] !== 0 ? units(entry[field] as number) : null;
      const perPixel = Object.entries(file).filter(([name, entry]) =>
        !skipped.has(name) && (nonZero(entry, 'input_cost_per_pixel') !== null || nonZero(entry, 'output_cost_per_pixel') !== null));
      expect(perPixel.length).toBeGreaterThan(40);
      for (const [name, entry] of perPixel) {
        const [, width = '1024', height = '1024'] = /(\d+)-x-(\d+)/.exec(name) ?? [];
        const pixels = BigInt(width) * BigInt(height);
        const price = nonZero(entry, 'output_cost_per_image') ?? nonZero(entry, 'input_cost_per_image')
          ?? pixels * (nonZero(entry, 'output_cost_per_pixel') ?? nonZero(entry, 'input_cost_per_pixel'))!;
        const held = await reserve(name, { prompt: 'a cat', n: 2, size: `${width}x${height}` });
        if (held.status !== 201 || held.body.reserved_cost !== money(2n * price) || held.body.estimate?.source !== 'request') {
          wrong.push({ name, status: held.status, got: held.body.reserved_cost ?? held.body.error, expected: money(2n * price) });
        }
      }
      expect(wrong).toEqual([]);
    }, 300_000);
  });
});
