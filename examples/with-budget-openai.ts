// withBudget around a real `openai` SDK call: reserve → call → settle from the answer's usage, once as a plain
// call and once streamed. Prints the hold, the usage and the charge of each.
//
//   npx tsx examples/with-budget-openai.ts
//
// With nothing set it starts everything it needs on this machine: a fake OpenAI server (test/support) and spendgate
// in process on an in-memory embedded Postgres. Point it at real ones with OPENAI_BASE_URL + OPENAI_API_KEY and
// SPENDGATE_URL + SPENDGATE_SERVICE_TOKEN.
import { serve } from '@hono/node-server';
import OpenAI from 'openai';
import { createApp } from '../lib/app.ts';
import { createClient, type Settled } from '../lib/client.ts';
import { loadConfig } from '../lib/config.ts';
import { pgliteDatabase } from '../lib/db/pglite.ts';
import { migrate } from '../lib/migrate.ts';
import { readMigrations } from '../functions/node/migrations.ts';
import { startFakeModelServer } from '../test/support/fake-model-server.ts';

const cleanup: Array<() => Promise<unknown>> = [];

async function modelServer(): Promise<{ baseURL: string; apiKey: string }> {
  if (process.env.OPENAI_BASE_URL && process.env.OPENAI_API_KEY) {
    return { baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY };
  }
  const fake = await startFakeModelServer();
  cleanup.push(() => fake.close());
  console.log(`model server: fake OpenAI at ${fake.url}`);
  return { baseURL: `${fake.url}/v1`, apiKey: 'sk-fake' };
}

async function spendgateServer(): Promise<{ url: string; token: string }> {
  if (process.env.SPENDGATE_URL && process.env.SPENDGATE_SERVICE_TOKEN) {
    return { url: process.env.SPENDGATE_URL, token: process.env.SPENDGATE_SERVICE_TOKEN };
  }
  const db = await pgliteDatabase();
  await migrate(db, readMigrations());
  const config = loadConfig({}, { allowGeneratedTokens: true });
  const app = createApp({ db, config, logRequest: () => {} });
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  cleanup.push(() => new Promise((resolve) => server.close(resolve)), () => db.close());
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  console.log(`spendgate: in process on embedded Postgres at ${url}`);
  return { url, token: config.tokens.service };
}

try {
  const openai = new OpenAI(await modelServer());
  const spendgate = createClient(await spendgateServer());
  const scopes = { key: 'sk-example', team: 'example-team' };
  const request = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'Say hello' }], max_tokens: 64 };
  const printSettled = (settled: Settled) =>
    console.log(`charge: ${settled.actual_cost} (from ${settled.cost_source}; ${settled.released_cost} of the hold returned)`);

  console.log('\n-- chat completion');
  const completion = await spendgate.withBudget({ scopes, model: request.model, request, onSettle: printSettled }, (hold) => {
    console.log(`hold: ${hold.reserved_cost} for ${hold.estimate.input_tokens} input + ${hold.estimate.output_tokens} output tokens (reservation ${hold.id})`);
    return openai.chat.completions.create(request);
  });
  console.log(`answer: ${completion.choices[0]?.message.content}`);
  console.log(`usage: ${JSON.stringify(completion.usage)}`);

  console.log('\n-- streamed chat completion');
  const streamed = { ...request, stream: true as const, stream_options: { include_usage: true } };
  const stream = await spendgate.withBudget({ scopes, model: request.model, request: streamed, onSettle: printSettled }, (hold) => {
    console.log(`hold: ${hold.reserved_cost} (reservation ${hold.id})`);
    return openai.chat.completions.create(streamed);
  });
  let text = '';
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    if (chunk.usage) console.log(`usage: ${JSON.stringify(chunk.usage)}`);
  }
  console.log(`answer: ${text}`);

  const team = await spendgate.limits.get('team', scopes.team);
  console.log(`\nteam ${scopes.team}: spend ${team.spend}, reserved ${team.reserved}`);
} finally {
  for (const close of cleanup.reverse()) await close();
}
