// The real entry points as a user runs them: functions/node-server.ts under Node with tsx's loader (npm start) and
// under Deno with the flags of `npm run start:deno`, in a child process, spoken to over HTTP.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { readMigrations } from '../functions/node/migrations.ts';
import { postgresUrl } from './support/databases.ts';
import { denoBinary } from './support/deno-binary.ts';
import { freePort } from './support/free-port.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

type Runtime = 'node' | 'deno';
/** The command each runtime's server starts with: Deno's permissions are the ones `npm run start:deno` gives. */
function command(runtime: Runtime): [string, string[]] {
  // `node --import tsx` rather than the tsx command: one process, which gets the test's SIGTERM itself. The tsx
  // command relays signals to the node it starts, and on a loaded machine turns a SIGTERM into a SIGKILL when the
  // child's acknowledgement takes over 30 ms.
  if (runtime === 'node') return [process.execPath, ['--import', 'tsx', 'functions/node-server.ts']];
  const script: string = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts['start:deno'];
  const [program, ...args] = script.split(' ');
  if (program !== 'deno') throw new Error(`start:deno does not run deno: ${script}`);
  return [denoBinary(), args];
}
const appliedLine = `spendgate: applied migrations ${readMigrations().map((m) => m.name).join(', ')}`;

interface Running {
  child: ChildProcess;
  port: number;
  base: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children = new Set<Running>();

/** The environment of a user with nothing configured, plus `extra`. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name === 'DATABASE_URL' || name === 'TEST_DATABASE_URL' || name === 'HOST' || name === 'PORT') continue;
    if (name.startsWith('SPENDGATE_') || name === 'CRON_SECRET') continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

async function start(extra: Record<string, string>, runtime: Runtime = 'node'): Promise<Running> {
  const port = await freePort();
  const [program, args] = command(runtime);
  // Its own process group, so that a stuck server and anything it started can be killed as a whole.
  const child = spawn(program, args, {
    cwd: root,
    env: cleanEnv({ PORT: String(port), ...extra }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const running: Running = { child, port, base: `http://127.0.0.1:${port}`, output: () => output, exited };
  children.add(running);
  void exited.then(() => children.delete(running));
  return running;
}

const gone = (ms: number) => new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ms).unref());

/** Polls /health until it answers 200 and the start-up lines are out; fails if the process exits or 40 s pass. */
async function ready(server: Running): Promise<void> {
  const deadline = Date.now() + 40_000;
  let exited = false;
  void server.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`the server exited before it was ready:\n${server.output()}`);
    try {
      const res = await fetch(`${server.base}/health`);
      await res.arrayBuffer();
      if (res.status === 200 && server.output().includes('API docs at')) return;
    } catch {
      // not listening yet
    }
    await gone(100);
  }
  throw new Error(`the server was not ready within 40 s:\n${server.output()}`);
}

/** SIGTERM, then its exit; SIGKILL to the whole group if it does not go within 10 s. */
async function stop(server: Running): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'timeout'> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return server.exited;
  server.child.kill('SIGTERM');
  const result = await Promise.race([server.exited, gone(10_000)]);
  if (result === 'timeout') kill(server);
  return result;
}

function kill(server: Running) {
  try {
    process.kill(-server.child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}

function tokenOf(output: string, role: 'admin' | 'service'): string {
  const match = new RegExp(`generated ${role} token .*: (sg_${role}_[0-9a-f]{48})$`, 'm').exec(output);
  if (!match?.[1]) throw new Error(`no generated ${role} token in:\n${output}`);
  return match[1];
}

async function call(server: Running, method: string, path: string, token: string | null, body?: unknown) {
  const res = await fetch(`${server.base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep the text
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: res.status, body: parsed as any };
}

afterAll(async () => {
  for (const server of [...children]) {
    if ((await stop(server)) === 'timeout') kill(server);
  }
});

describe('the local server (npm start)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'spendgate-server-test-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  let reservationId = '';

  it('with no configuration: embedded Postgres, generated tokens, serves the API', async () => {
    const server = await start({ SPENDGATE_DATA_DIR: dataDir });
    try {
      await ready(server);
      const output = server.output();
      expect(output).toContain(appliedLine);
      expect(output).toContain(`spendgate: listening on http://127.0.0.1:${server.port} (embedded Postgres (PGlite) in ${dataDir})`);
      const admin = tokenOf(output, 'admin');
      const service = tokenOf(output, 'service');
      expect(admin).not.toBe(service);

      const health = await call(server, 'GET', '/health', null);
      expect(health).toEqual({ status: 200, body: { ok: true } });
      expect((await call(server, 'POST', '/v1/reservations', null, { scopes: { key: 'sk-1' }, estimate: { cost: '0.25' } })).status).toBe(401);
      expect((await call(server, 'POST', '/v1/reservations', admin.replace(/.$/, (c) => (c === '0' ? '1' : '0')), { scopes: { key: 'sk-1' }, estimate: { cost: '0.25' } })).status).toBe(401);

      const held = await call(server, 'POST', '/v1/reservations', service, { scopes: { key: 'sk-1' }, estimate: { cost: '0.25' } });
      expect(held.status).toBe(201);
      expect(held.body).toMatchObject({ status: 'held', reserved_cost: '0.250000' });
      reservationId = held.body.id;
      expect((await call(server, 'GET', '/v1/audit', service)).status).toBe(403);
      expect((await call(server, 'GET', '/v1/audit', admin)).body).toMatchObject({ ok: true, mismatches: [] });
    } finally {
      expect(await stop(server)).toEqual({ code: 0, signal: null });
    }
    // The request log, one JSON line per request on stdout, all of them out by the time the process has exited.
    const logged = server.output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
    expect(logged.filter((line) => line.msg === 'request' && line.route === '/v1/reservations').map((line) => line.status))
      .toEqual([401, 401, 201]);
    expect(logged.at(-1)).toMatchObject({ msg: 'request', method: 'GET', path: '/v1/audit', status: 200, role: 'admin' });
  }, 60_000);

  it('started again on the same data directory: the reservation is still there, nothing is migrated again', async () => {
    expect(reservationId).not.toBe('');
    const server = await start({ SPENDGATE_DATA_DIR: dataDir });
    try {
      await ready(server);
      const output = server.output();
      expect(output).not.toContain('applied migrations');
      const service = tokenOf(output, 'service');
      const read = await call(server, 'GET', `/v1/reservations/${reservationId}`, service);
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ id: reservationId, status: 'held', reserved_cost: '0.250000' });
      const usage = await call(server, 'GET', '/v1/limits/key/sk-1', service);
      expect(usage.body).toMatchObject({ reserved: '0.250000', in_flight: 1, spend: '0.000000' });
    } finally {
      expect(await stop(server)).toEqual({ code: 0, signal: null });
    }
  }, 60_000);

  it('on a public address without tokens: exits with 78 naming the variables, never listening', async () => {
    const server = await start({ HOST: '0.0.0.0', SPENDGATE_DATA_DIR: dataDir });
    const result = await Promise.race([server.exited, gone(30_000)]);
    if (result === 'timeout') kill(server);
    expect(result).toEqual({ code: 78, signal: null });
    const output = server.output();
    expect(output).toContain('spendgate: refusing to start on 0.0.0.0');
    expect(output).toContain('SPENDGATE_ADMIN_TOKEN is not set');
    expect(output).toContain('SPENDGATE_SERVICE_TOKEN is not set');
    expect(output).not.toContain('listening');
    await expect(fetch(`${server.base}/health`)).rejects.toThrow();
  }, 60_000);

  it('on a public address with only the admin token: exits with 78 naming the service token', async () => {
    const server = await start({ HOST: '0.0.0.0', SPENDGATE_ADMIN_TOKEN: 'a-chosen-admin-token-0001', SPENDGATE_DATA_DIR: dataDir });
    const result = await Promise.race([server.exited, gone(30_000)]);
    if (result === 'timeout') kill(server);
    expect(result).toEqual({ code: 78, signal: null });
    const output = server.output();
    expect(output).toContain('SPENDGATE_SERVICE_TOKEN is not set');
    expect(output).not.toContain('SPENDGATE_ADMIN_TOKEN is not set');
    expect(output).not.toContain('listening');
  }, 60_000);

  it('on a public address with both tokens: serves with them and prints no generated token', async () => {
    const admin = 'a-chosen-admin-token-0001';
    const service = 'a-chosen-service-token-01';
    const server = await start({ HOST: '0.0.0.0', SPENDGATE_ADMIN_TOKEN: admin, SPENDGATE_SERVICE_TOKEN: service, SPENDGATE_DATA_DIR: dataDir });
    try {
      await ready(server);
      expect(server.output()).not.toContain('generated');
      expect((await call(server, 'GET', `/v1/reservations/${reservationId}`, service)).status).toBe(200);
      expect((await call(server, 'GET', '/v1/audit', admin)).body).toMatchObject({ ok: true });
      expect((await call(server, 'GET', '/v1/audit', null)).status).toBe(401);
    } finally {
      expect(await stop(server)).toEqual({ code: 0, signal: null });
    }
  }, 60_000);
});

describe('the local server under Deno (npm run start:deno)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'spendgate-deno-server-test-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('with no configuration: the same embedded Postgres, generated tokens and API as npm start', async () => {
    const server = await start({ SPENDGATE_DATA_DIR: dataDir }, 'deno');
    try {
      await ready(server);
      const output = server.output();
      expect(output).toContain(appliedLine);
      expect(output).toContain(`spendgate: listening on http://127.0.0.1:${server.port} (embedded Postgres (PGlite) in ${dataDir})`);
      const service = tokenOf(output, 'service');
      const held = await call(server, 'POST', '/v1/reservations', service, { scopes: { key: 'sk-1' }, estimate: { cost: '0.25' } });
      expect(held.status).toBe(201);
      expect((await call(server, 'GET', '/v1/audit', tokenOf(output, 'admin'))).body).toMatchObject({ ok: true, mismatches: [] });
      expect((await call(server, 'GET', '/v1/audit', service)).status).toBe(403);
    } finally {
      expect(await stop(server)).toEqual({ code: 0, signal: null });
    }
  }, 90_000);

  it('on a public address without tokens: exits with 78 naming the variables, never listening', async () => {
    const server = await start({ HOST: '0.0.0.0', SPENDGATE_DATA_DIR: dataDir }, 'deno');
    const result = await Promise.race([server.exited, gone(30_000)]);
    if (result === 'timeout') kill(server);
    expect(result).toEqual({ code: 78, signal: null });
    expect(server.output()).toContain('SPENDGATE_ADMIN_TOKEN is not set');
    expect(server.output()).not.toContain('listening');
  }, 60_000);
});

describe.skipIf(!postgresUrl).each(['node', 'deno'] as const)('the local server with DATABASE_URL (%s)', (runtime) => {
  const name = `spendgate_server_${runtime}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const url = (() => {
    if (!postgresUrl) return '';
    const u = new URL(postgresUrl);
    u.pathname = `/${name}`;
    return u.toString();
  })();
  let created = false;

  afterAll(async () => {
    if (!created) return;
    const admin = postgres(postgresUrl!, { max: 1, onnotice: () => {} });
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });

  it('migrates a fresh database and serves on it', async () => {
    const admin = postgres(postgresUrl!, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    await admin.end();
    created = true;

    const server = await start({ DATABASE_URL: url }, runtime);
    try {
      await ready(server);
      const output = server.output();
      expect(output).toContain(appliedLine);
      expect(output).toContain(`(Postgres at ${new URL(url).host})`);
      const service = tokenOf(output, 'service');
      const held = await call(server, 'POST', '/v1/reservations', service, { scopes: { team: 't-1' }, estimate: { cost: '1.5' } });
      expect(held.status).toBe(201);
      const settled = await call(server, 'POST', `/v1/reservations/${held.body.id}/settle`, service, { cost: '0.4' });
      expect(settled.body).toMatchObject({ status: 'settled', actual_cost: '0.400000', released_cost: '1.100000' });
      expect((await call(server, 'GET', '/v1/audit', tokenOf(output, 'admin'))).body).toMatchObject({ ok: true, mismatches: [] });
    } finally {
      expect(await stop(server)).toEqual({ code: 0, signal: null });
    }

    // The migrations were recorded in that database, once each.
    const db = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const rows = await db<{ name: string }[]>`select name from spendgate.schema_migrations order by name`;
      expect(rows.map((r) => r.name)).toEqual(readMigrations().map((m) => m.name));
      const [settled] = await db<{ n: string }[]>`select count(*)::text as n from spendgate.reservations where status = 'settled'`;
      expect(settled!.n).toBe('1');
    } finally {
      await db.end();
    }
  }, 60_000);
});
