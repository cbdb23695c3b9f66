// `spendgate` (the package's bin) spawned as a process, as an operator runs it, against a real server on a free
// port: every admin operation round-trips, and each exit code means what the README says.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, type ServerType } from '@hono/node-server';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, postgresUrl } from './support/databases.ts';
import { type Harness, startHarness, tokens, uniqueId } from './support/harness.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'functions', 'spendgate.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of an operator's shell: nothing of spendgate's unless given. */
function shellEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('SPENDGATE_') && !['DATABASE_URL', 'TEST_DATABASE_URL', 'PORT', 'HOST', 'CRON_SECRET'].includes(name)) env[name] = value;
  }
  return { ...env, ...extra };
}

function spendgate(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: root, env: shellEnv(env), timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

describe.each(backends)('spendgate CLI (%s)', (backend) => {
  let h: Harness;
  let server: ServerType;
  let env: Record<string, string>;
  const cli = (...args: string[]) => spendgate(args, env);
  const json = async (...args: string[]) => {
    const run = await cli(...args, '--json');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    return JSON.parse(run.stdout);
  };

  beforeAll(async () => {
    h = await startHarness(backend);
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: h.app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
    });
    const { port } = server.address() as AddressInfo;
    env = { SPENDGATE_URL: `http://127.0.0.1:${port}`, SPENDGATE_ADMIN_TOKEN: tokens.admin };
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await h.close();
  });

  it('limits set, get, list and delete round-trip, as tables and as JSON', async () => {
    const team = uniqueId('team');
    const set = await cli('limits', 'set', 'team', team, '--max-budget', '50.00', '--budget-duration', '1mo', '--rpm', '600', '--tpm', '100000', '--max-parallel', '4');
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/^field\s+value$/m);
    expect(set.stdout).toMatch(/^max_budget\s+50\.000000$/m);
    expect(set.stdout).toMatch(/^rpm\s+600$/m);

    expect(await json('limits', 'get', 'team', team)).toMatchObject({
      kind: 'team', id: team, max_budget: '50.000000', budget_duration: '1mo', rpm: 600, tpm: 100000, max_parallel: 4, spend: '0.000000',
    });
    await json('limits', 'set', 'team', team, '--model', 'gpt-4o', '--max-budget', '10', '--rpm', '60');
    await json('limits', 'set', 'team', team, '--rpm', 'none', '--soft-budget', '40');
    const read = await json('limits', 'get', 'team', team);
    expect(read).toMatchObject({ rpm: null, soft_budget: '40.000000', max_budget: '50.000000' });
    expect(read.models['gpt-4o']).toMatchObject({ max_budget: '10.000000', rpm: 60 });
    expect((await cli('limits', 'get', 'team', team)).stdout).toMatch(/^MODEL\s+MAX_BUDGET.*\ngpt-4o\s+10\.000000/m);

    const other = uniqueId('team');
    await json('limits', 'set', 'team', other, '--max-budget', '1');
    const listed = await json('limits', 'list', '--kind', 'team');
    expect(listed.map((l: { id: string }) => l.id)).toEqual(expect.arrayContaining([team, other]));
    const table = await cli('limits', 'list', '--kind', 'team');
    expect(table.stdout.split('\n')[0]).toMatch(/^KIND\s+ID\s+MAX_BUDGET\s+SPEND/);
    expect(table.stdout).toMatch(new RegExp(`^team\\s+${team}\\s+50\\.000000\\s+0\\.000000`, 'm'));

    const deleted = await cli('limits', 'delete', 'team', other);
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toContain(`deleted the limit of team/${other}`);
    expect((await h.admin('GET', `/v1/limits/team/${other}`)).body.max_budget ?? null).toBeNull();
    await h.expectAuditOk();
  });

  it('models import FILE and models get round-trip, prices exact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spendgate-cli-'));
    try {
      const file = join(dir, 'prices.json');
      const name = uniqueId('cli-model');
      writeFileSync(file, `{"sample_spec": {"mode": "chat"}, "${name}": {"litellm_provider": "openai", "mode": "chat", "max_output_tokens": 4096, "input_cost_per_token": 1.2345678901234567890e-7, "output_cost_per_token": 0.000002}, "broken": {"input_cost_per_token": "cheap"}}`);
      const imported = await cli('models', 'import', file);
      expect(imported.code).toBe(0);
      expect(imported.stdout).toContain('imported 1 models, skipped 2');
      expect(imported.stdout).toMatch(/^broken\s+input_cost_per_token/m);
      const model = await json('models', 'get', name);
      expect(model).toMatchObject({ name, input_cost_per_token: '0.0000001234567890123456789', output_cost_per_token: '0.000002', max_output_tokens: 4096 });
      expect((await cli('models', 'get', name)).stdout).toMatch(/^input_cost_per_token\s+0\.0000001234567890123456789$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reservations get, sweep and audit', async () => {
    const key = uniqueId('key');
    const held = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.3' }, ttl_seconds: 10 });
    const shown = await cli('reservations', 'get', held.body.id);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^status\s+held$/m);
    expect(shown.stdout).toMatch(/^reserved_cost\s+0\.300000$/m);
    expect(await json('reservations', 'get', held.body.id)).toMatchObject({ id: held.body.id, status: 'held' });

    h.clock.advance(60);
    const swept = await cli('sweep');
    expect(swept.code).toBe(0);
    expect(swept.stdout).toMatch(/^expired [1-9]\d* held reservations$/m);
    expect((await json('reservations', 'get', held.body.id)).status).toBe('expired');
    h.clock.set('2026-03-10T12:00:00Z');

    const audit = await cli('audit');
    expect(audit.code).toBe(0);
    expect(audit.stdout).toMatch(/^ok: \d+ scopes checked/);
  });

  it('exit 4 and the mismatches when the audit finds a counter off the ledger', async () => {
    const key = uniqueId('key');
    await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.1' } });
    await h.db.query(`update spendgate.counters set spend = spend + 1 where kind = 'key' and id = $1`, [key]);
    try {
      const audit = await cli('audit');
      expect(audit.code).toBe(4);
      expect(audit.stdout).toContain('MISMATCH');
      expect(audit.stdout).toMatch(new RegExp(`^key\\s+${key}\\s+spend\\s+1\\.?0*\\s+0\\.?0*$`, 'm'));
      const asJson = await cli('audit', '--json');
      expect(asJson.code).toBe(4);
      expect(JSON.parse(asJson.stdout)).toMatchObject({ ok: false, mismatches: [{ kind: 'key', id: key, field: 'spend' }] });
    } finally {
      await h.db.query(`update spendgate.counters set spend = spend - 1 where kind = 'key' and id = $1`, [key]);
    }
  });

  it('exit 1 for an error answer', async () => {
    const invalid = await cli('reservations', 'get', 'not-a-uuid');
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('id: a reservation id is a UUID');
    const missing = await cli('models', 'get', 'no-such-model-anywhere', '--json');
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stderr)).toMatchObject({ error: { type: 'not_found', status: 404 } });
    const forbidden = await spendgate(['audit'], { SPENDGATE_URL: env.SPENDGATE_URL!, SPENDGATE_SERVICE_TOKEN: tokens.service });
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toContain('service role may not call this route');
  });
});

describe('spendgate without a server of the suite', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'spendgate-cli-'));
    dirs.push(dir);
    return dir;
  };

  it('exit 2 for a usage error, 3 when nothing answers', async () => {
    const env = { SPENDGATE_URL: 'http://127.0.0.1:9', SPENDGATE_ADMIN_TOKEN: tokens.admin };
    for (const args of [['limits'], ['frobnicate'], ['limits', 'get', 'team'], ['limits', 'set', 'team', 't'], ['limits', 'set', 'team', 't', '--rpm', 'lots'], ['sweep', '--bogus']]) {
      const run = await spendgate(args, env);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr).toContain('usage: spendgate');
    }
    expect((await spendgate(['sweep'], { SPENDGATE_URL: env.SPENDGATE_URL })).code).toBe(2); // no token

    const nobody = await spendgate(['audit'], env);
    expect(nobody.code).toBe(3);
    expect(nobody.stderr).toContain('cannot reach spendgate at http://127.0.0.1:9');
  });

  it('migrate applies the migrations to the embedded database once', async () => {
    const env = { SPENDGATE_DATA_DIR: join(tempDir(), 'pgdata') };
    const first = await spendgate(['migrate'], env);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^applied 0001_schema\.sql, .* to embedded Postgres/);
    const again = await spendgate(['migrate'], env);
    expect(again.stdout).toMatch(/is up to date$/m);
  });

  it.runIf(postgresUrl)('migrate applies the migrations to DATABASE_URL', async () => {
    const name = `spendgate_cli_${Date.now().toString(36)}`;
    const server = postgres(postgresUrl!, { max: 1, onnotice: () => {} });
    await server.unsafe(`create database ${name}`);
    try {
      const url = new URL(postgresUrl!);
      url.pathname = `/${name}`;
      const run = await spendgate(['migrate'], { DATABASE_URL: url.toString(), SPENDGATE_RATE_WINDOW_SECONDS: '30' });
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^applied 0001_schema\.sql, .* to Postgres at /);
      // The rate window is a setting every instance reads from the database: migrate stores it there.
      const migrated = postgres(url.toString(), { max: 1, onnotice: () => {} });
      try {
        const [row] = await migrated`select rate_window_seconds from spendgate.settings`;
        expect(row!.rate_window_seconds).toBe(30);
      } finally {
        await migrated.end();
      }
      const bad = await spendgate(['migrate'], { DATABASE_URL: url.toString(), SPENDGATE_RATE_WINDOW_SECONDS: '0' });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('SPENDGATE_RATE_WINDOW_SECONDS must be a whole number of seconds from 1 to 3600');
    } finally {
      await server.unsafe(`drop database if exists ${name} with (force)`);
      await server.end();
    }
  });

  it('migrate exits 3 when the database cannot be reached', async () => {
    const run = await spendgate(['migrate'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:9/none' });
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('cannot migrate Postgres at 127.0.0.1:9');
  });

  it('serve runs the server, which the other commands then talk to', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = serve({ fetch: () => new Response(), hostname: '127.0.0.1', port: 0 }, () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const env = { PORT: String(port), SPENDGATE_DATA_DIR: join(tempDir(), 'pgdata'), SPENDGATE_ADMIN_TOKEN: tokens.admin, SPENDGATE_SERVICE_TOKEN: tokens.service };
    const child = spawn(process.execPath, [bin, 'serve'], { cwd: root, env: shellEnv(env), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await expect.poll(() => output, { timeout: 40_000, interval: 100 }).toContain(`listening on http://127.0.0.1:${port}`);
      const run = await spendgate(['audit'], { SPENDGATE_URL: `http://127.0.0.1:${port}`, SPENDGATE_ADMIN_TOKEN: tokens.admin });
      expect(run.stdout).toMatch(/^ok: /);
      expect(run.code).toBe(0);
      // The server logs each request as one JSON line.
      await expect.poll(() => output, { timeout: 10_000, interval: 50 }).toMatch(/"route":"\/v1\/audit","path":"\/v1\/audit","status":200/);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
      await exited;
    }
  });
});
