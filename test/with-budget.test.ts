// withBudget around the official openai and @anthropic-ai/sdk clients, talking to a local fake model server, with
// spendgate in process on a fresh database. Every charge is checked against the ledger.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { BudgetExceededError, createClient, type Settled, type SpendgateClient } from '../lib/client.ts';
import { backends } from './support/databases.ts';
import { inputTokens, outputTokens, replyPieces, startFakeModelServer, type FakeModelServer } from './support/fake-model-server.ts';
import { type Harness, startHarness, tokens, uniqueId } from './support/harness.ts';

// Prices chosen so that every charge is a short exact decimal.
const gpt = { name: 'fake-gpt', input: '0.00001', output: '0.00003' };
const claude = { name: 'fake-claude', input: '0.00002', output: '0.0001' };
const gptCost = '0.000300'; // 12 × 0.00001 + 6 × 0.00003
const claudeCost = '0.000840'; // 12 × 0.00002 + 6 × 0.0001
const claudeInputCost = '0.000240'; // 12 × 0.00002

const chat = {
  model: gpt.name,
  messages: [{ role: 'user' as const, content: 'Say hello' }],
  max_tokens: 50,
};
const chatStream = (includeUsage = true) => ({
  ...chat,
  stream: true as const,
  ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
});
const message = { model: claude.name, max_tokens: 50, messages: [{ role: 'user' as const, content: 'Say hello' }] };

describe.each(backends)('withBudget with the openai and anthropic SDKs (%s)', (backend) => {
  let h: Harness;
  let models: FakeModelServer;
  let spendgate: SpendgateClient;
  let openai: OpenAI;
  let anthropic: Anthropic;
  let extendCalls = 0;

  beforeAll(async () => {
    h = await startHarness(backend);
    models = await startFakeModelServer();
    for (const model of [gpt, claude]) {
      await h.admin('PUT', `/v1/models/${model.name}`, { mode: 'chat', input_cost_per_token: model.input, output_cost_per_token: model.output });
    }
    spendgate = createClient({
      url: 'http://spendgate.test',
      token: tokens.service,
      fetch: (request) => {
        if (request.url.endsWith('/extend')) extendCalls++;
        return h.app.fetch(request);
      },
    });
    openai = new OpenAI({ apiKey: 'sk-fake', baseURL: `${models.url}/v1`, maxRetries: 0 });
    anthropic = new Anthropic({ apiKey: 'sk-ant-fake', baseURL: models.url, maxRetries: 0 });
  });
  afterAll(async () => {
    await models.close();
    await h.close();
  });
  afterEach(() => h.expectAuditOk());

  /** A team nobody else charges, and what it owes afterwards. */
  const team = () => {
    const id = uniqueId('team');
    return { scopes: { team: id }, usage: () => h.scope('team', id) };
  };

  it('settles a chat completion from its usage and hands the answer back unchanged', async () => {
    const { scopes, usage } = team();
    let settled: Settled | undefined;
    const completion = await spendgate.withBudget(
      { scopes, model: gpt.name, request: chat, onSettle: (s) => (settled = s) },
      () => openai.chat.completions.create(chat),
    );
    expect(completion.choices[0]?.message.content).toBe(replyPieces.join(''));
    expect(settled).toMatchObject({ status: 'settled', actual_cost: gptCost, cost_source: 'usage', actual_tokens: inputTokens + outputTokens, late: false });
    expect(await usage()).toMatchObject({ spend: gptCost, reserved: '0.000000', in_flight: 0 });
  });

  it('settles a streamed chat completion from its final usage chunk', async () => {
    const { scopes, usage } = team();
    let settled: Settled | undefined;
    const stream = await spendgate.withBudget(
      { scopes, model: gpt.name, request: chatStream(), onSettle: (s) => (settled = s) },
      () => openai.chat.completions.create(chatStream()),
    );
    // Held while the stream is open.
    expect(await usage()).toMatchObject({ spend: '0.000000', in_flight: 1 });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(replyPieces.join(''));
    expect(settled).toMatchObject({ actual_cost: gptCost, cost_source: 'usage' });
    expect(await usage()).toMatchObject({ spend: gptCost, reserved: '0.000000', in_flight: 0 });
  });

  it('charges the whole hold for a stream that never reports its usage', async () => {
    const { scopes, usage } = team();
    let hold = '';
    const stream = await spendgate.withBudget({ scopes, model: gpt.name, request: chatStream(false) }, (h) => {
      hold = h.reserved_cost;
      return openai.chat.completions.create(chatStream(false));
    });
    for await (const _ of stream) { /* read to the end */ }
    expect((await usage()).spend).toBe(hold);
    expect(hold).not.toBe('0.000000');
  });

  it('settles an Anthropic message from its usage', async () => {
    const { scopes, usage } = team();
    const answer = await spendgate.withBudget({ scopes, model: claude.name, request: message },
      () => anthropic.messages.create(message));
    expect(answer.content[0]).toMatchObject({ type: 'text', text: replyPieces.join('') });
    expect(await usage()).toMatchObject({ spend: claudeCost, reserved: '0.000000', in_flight: 0 });
  });

  it('settles a streamed Anthropic message from message_start and message_delta usage', async () => {
    const { scopes, usage } = team();
    const stream = await spendgate.withBudget({ scopes, model: claude.name, request: message },
      () => anthropic.messages.create({ ...message, stream: true }));
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types).toContain('message_delta');
    expect(await usage()).toMatchObject({ spend: claudeCost, reserved: '0.000000', in_flight: 0 });
  });

  it('releases the hold when the call throws, and rethrows its error', async () => {
    const { scopes, usage } = team();
    // The fake server has no embeddings route: the SDK throws its 404.
    const failing = spendgate.withBudget({ scopes, model: gpt.name, request: { input: 'hi' } },
      () => openai.embeddings.create({ model: gpt.name, input: 'hi' }));
    await expect(failing).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect(await usage()).toMatchObject({ spend: '0.000000', reserved: '0.000000', in_flight: 0 });
  });

  it('a chat stream cancelled before any output is charged the input only', async () => {
    const { scopes, usage } = team();
    const pause = models.pauseNextStream();
    let settled: Settled | undefined;
    let inputEstimate = 0;
    const stream = await spendgate.withBudget({ scopes, model: gpt.name, request: chatStream(), onSettle: (s) => (settled = s) },
      (hold) => {
        inputEstimate = hold.estimate.input_tokens;
        return openai.chat.completions.create(chatStream());
      });
    for await (const chunk of stream) {
      expect(chunk.choices[0]?.delta.content).toBe(''); // the role chunk: no output yet
      break;
    }
    pause.resume();
    // OpenAI reports usage only at the end, so the input is the hold's estimate of it: 4 + 9 bytes + 3 tokens.
    expect(inputEstimate).toBe(16);
    expect(settled).toMatchObject({ actual_cost: '0.000160', actual_tokens: 16 });
    expect(await usage()).toMatchObject({ spend: '0.000160', reserved: '0.000000', in_flight: 0 });
  });

  it('an Anthropic stream cancelled before any output is charged the input message_start reported', async () => {
    const { scopes, usage } = team();
    const pause = models.pauseNextStream();
    const stream = await spendgate.withBudget({ scopes, model: claude.name, request: message },
      () => anthropic.messages.create({ ...message, stream: true }));
    for await (const event of stream) {
      expect(event.type).toBe('message_start');
      break;
    }
    pause.resume();
    expect(await usage()).toMatchObject({ spend: claudeInputCost, reserved: '0.000000', in_flight: 0 });
  });

  it('extends the hold while a stream is open, so a slow stream settles on time', async () => {
    const { scopes, usage } = team();
    const pause = models.pauseNextStream();
    let settled: Settled | undefined;
    let holdId = '';
    const stream = await spendgate.withBudget(
      { scopes, model: gpt.name, request: chatStream(), ttlSeconds: 60, extendEveryMs: 5, onSettle: (s) => (settled = s) },
      (hold) => {
        holdId = hold.id;
        expect(hold.expires_at).toBe('2026-03-10T12:01:00.000000Z');
        return openai.chat.completions.create(chatStream());
      },
    );
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next(); // the stream is open and paused after its first chunk
    await pause.reached;
    const before = extendCalls;
    h.clock.advance(50);
    // An extension after the clock moved sets expires_at to 12:00:50 + 60 s.
    await vi.waitFor(async () => {
      expect(extendCalls).toBeGreaterThan(before);
      expect((await spendgate.reservations.get(holdId)).expires_at).toBe('2026-03-10T12:01:50.000000Z');
    }, { timeout: 10_000, interval: 5 });
    h.clock.advance(30); // past the first expiry
    expect((await h.admin('POST', '/v1/sweep')).status).toBe(200);
    expect((await spendgate.reservations.get(holdId)).status).toBe('held');
    pause.resume();
    while (!(await iterator.next()).done) { /* read to the end */ }
    expect(settled).toMatchObject({ status: 'settled', late: false, actual_cost: gptCost });
    expect(await usage()).toMatchObject({ spend: gptCost, reserved: '0.000000', in_flight: 0 });
    h.clock.set('2026-03-10T12:00:00Z');
  });

  it('a refused reserve throws BudgetExceededError naming the scope, and the model is never called', async () => {
    const { scopes } = team();
    await h.admin('PUT', `/v1/limits/team/${scopes.team}`, { max_budget: '0.0001' });
    const calls = models.requests.length;
    const refused = spendgate.withBudget({ scopes, model: gpt.name, request: chat },
      () => openai.chat.completions.create(chat));
    await expect(refused).rejects.toBeInstanceOf(BudgetExceededError);
    await expect(refused).rejects.toMatchObject({ status: 429, type: 'budget_exceeded', scope: { kind: 'team', id: scopes.team } });
    expect(models.requests.length).toBe(calls);
  });
});
