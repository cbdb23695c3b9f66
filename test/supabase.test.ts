// The Supabase Edge Function as Supabase runs it: supabase/functions/spendgate/index.ts under Deno, its packages
// from the function's own deno.json (npm: specifiers, the versions this repository tests), on a real database,
// spoken to over HTTP under the /spendgate prefix that Supabase's routing keeps.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresUrl } from './support/databases.ts';
import { denoBinary } from './support/deno-binary.ts';
import { eventually } from './support/eventually.ts';
import { freePort } from './support/free-port.ts';
import { type Harness, startHarness, tokens, uniqueId } from './support/harness.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const functionDir = join(root, 'supabase/functions/spendgate');

interface Running {
  child: ChildProcess;
  base: string;
  output(): string;
}

/** Runs the function with `env` as its secrets; resolves once Deno.serve listens (DENO_SERVE_ADDRESS picks the
 * port, as Supabase's runtime picks its own). */
async function runFunction(env: Record<string, string>): Promise<Running> {
  const port = await freePort();
  const child = spawn(denoBinary(), ['run', '--allow-net', '--allow-env', '--allow-read', '--config', join(functionDir, 'deno.json'), join(functionDir, 'index.ts')], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${port}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the function did not listen within 90 s:\n${output}`)), 90_000);
    const check = () => {
      if (output.includes(`127.0.0.1:${port}`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`the function exited:\n${output}`));
    });
  });
  return { child, base: `http://127.0.0.1:${port}/spendgate`, output: () => output };
}

function stop(running: Running | undefined) {
  running?.child.kill('SIGKILL');
}

describe('supabase/ configuration', () => {
  it('turns off Supabase\'s JWT check for the function, which checks its own bearer tokens', () => {
    const config = readFileSync(join(root, 'supabase/config.toml'), 'utf8');
    expect(config).toMatch(/\[functions\.spendgate\][^[]*verify_jwt = false/);
    expect(config).toMatch(/\[functions\.spendgate\][^[]*import_map = "\.\/functions\/spendgate\/deno\.json"/);
  });

  it("the function's deno.json pins every package at the version this repository installs and tests", () => {
    const { imports } = JSON.parse(readFileSync(join(functionDir, 'deno.json'), 'utf8')) as { imports: Record<string, string> };
    for (const [name, target] of Object.entries(imports)) {
      const match = /^npm:\/?(@?[^@]+)@([^/]+)\/?$/.exec(target);
      expect(match, `${name} → ${target}`).not.toBeNull();
      const installed = JSON.parse(readFileSync(join(root, 'node_modules', match![1]!, 'package.json'), 'utf8')).version;
      expect(`${match![1]}@${match![2]}`).toBe(`${match![1]}@${installed}`);
    }
  });
});

describe.skipIf(!postgresUrl)('the Supabase Edge Function under Deno on real Postgres', () => {
  let h: Harness;
  let running: Running | undefined;

  beforeAll(async () => {
    h = await startHarness('postgres', { start: null });
    running = await runFunction({
      DATABASE_URL: h.url!,
      SPENDGATE_ADMIN_TOKEN: tokens.admin,
      SPENDGATE_SERVICE_TOKEN: tokens.service,
      CRON_SECRET: tokens.cron,
    });
  }, 120_000);
  afterAll(async () => {
    stop(running);
    await h?.close();
  });

  const call = async (path: string, token: string | null, body?: unknown) => {
    const res = await fetch(running!.base + path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };

  it('answers /spendgate/health, and refuses /v1 without a token', async () => {
    expect(await call('/health', null)).toEqual({ status: 200, body: { ok: true } });
    expect((await call('/v1/audit', null)).status).toBe(401);
  });

  it('reserves, settles, releases and sweeps under /spendgate/v1', async () => {
    const key = uniqueId('key');
    const held = await call('/v1/reservations', tokens.service, { scopes: { key }, model: 'gpt-4o', request: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 } });
    expect(held.status).toBe(201);
    const settled = await call(`/v1/reservations/${held.body.id}/settle`, tokens.service, { usage: { prompt_tokens: 9, completion_tokens: 5 } });
    // gpt-4o: 9 × 0.0000025 + 5 × 0.00001
    expect(settled.body).toMatchObject({ status: 'settled', actual_cost: '0.0000725' });
    const other = await call('/v1/reservations', tokens.service, { scopes: { key }, estimate: { cost: '1' } });
    expect((await call(`/v1/reservations/${other.body.id}/release`, tokens.service, {})).body).toMatchObject({ status: 'released' });
    expect((await call('/v1/sweep', tokens.cron)).body).toMatchObject({ complete: true });
    expect((await call('/v1/audit', tokens.admin)).body).toMatchObject({ ok: true, mismatches: [] });
    expect((await call(`/v1/limits/key/${key}`, tokens.service)).body).toMatchObject({ spend: '0.0000725', reserved: '0.000000' });
  });

  it('routes model names with slashes under the prefix', async () => {
    expect((await call('/v1/models/openai/gpt-4o', tokens.service)).body).toMatchObject({ name: 'gpt-4o' });
  });

  it('without its secrets it answers 500 to every request and logs which are missing', async () => {
    const bare = await runFunction({});
    try {
      const reply = await fetch(`${bare.base}/health`);
      expect(reply.status).toBe(500);
      expect(await reply.json()).toMatchObject({ error: { type: 'internal' } });
      // The log line is written while the request is served; its bytes may reach this process just after the answer.
      await eventually('the function logs why it is not configured', () => bare.output().includes('DATABASE_URL is not set'));
      expect(bare.output()).toContain('SPENDGATE_ADMIN_TOKEN is not set');
      expect(bare.output()).toContain('SPENDGATE_SERVICE_TOKEN is not set');
    } finally {
      stop(bare);
    }
  }, 120_000);
});
