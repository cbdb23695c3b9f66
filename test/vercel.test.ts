// The Vercel functions as Vercel loads them: `npm run build:vercel` bundles the entries, api/node.js and api/edge.js
// re-export the bundles, and each is called with Web Requests on a real database.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresUrl } from './support/databases.ts';
import { eventually } from './support/eventually.ts';
import { type Harness, startHarness, tokens, uniqueId } from './support/harness.ts';
import { useNeonProxy } from './support/neon-local.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const origin = 'https://spendgate-test.vercel.app';

type NodeEntry = { fetch(request: Request): Promise<Response> };
type EdgeEntry = (request: Request, context?: { waitUntil(promise: Promise<unknown>): void }) => Promise<Response>;

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const json = (token: string, body: unknown): RequestInit => ({
  method: 'POST',
  headers: { ...bearer(token), 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

describe('vercel.json', () => {
  const config = JSON.parse(readFileSync(join(root, 'vercel.json'), 'utf8'));

  it('builds with npm run build:vercel and routes every path to the Node.js function', () => {
    expect(config.buildCommand).toBe('npm run build:vercel');
    expect(config.rewrites).toEqual([{ source: '/(.*)', destination: '/api/node' }]);
  });

  it('calls the sweeper every minute (with CRON_SECRET, which Vercel sends as a bearer token)', () => {
    expect(config.crons).toEqual([{ path: '/v1/sweep', schedule: '* * * * *' }]);
  });
});

describe.skipIf(!postgresUrl)('the Vercel functions on real Postgres', () => {
  let h: Harness;
  let saved: NodeJS.ProcessEnv;
  let nodeEntry: NodeEntry;
  let edgeEntry: EdgeEntry;
  let releaseProxy: () => Promise<void>;
  let proxyOpen: () => number;

  beforeAll(async () => {
    execFileSync(join(root, 'node_modules/.bin/tsx'), ['functions/vercel/build.ts'], { cwd: root, stdio: 'pipe' });
    // Holds made an hour ago through the harness's clock are stale now, by the database's clock that the
    // functions use.
    h = await startHarness('postgres', { start: new Date(Date.now() - 3600_000).toISOString() });
    saved = { ...process.env };
    // What the project's environment variables would hold on Vercel.
    Object.assign(process.env, {
      DATABASE_URL: h.url!,
      SPENDGATE_ADMIN_TOKEN: tokens.admin,
      SPENDGATE_SERVICE_TOKEN: tokens.service,
      CRON_SECRET: tokens.cron,
    });
    const neon = await useNeonProxy();
    releaseProxy = neon.release;
    proxyOpen = neon.proxy.openConnections;
    nodeEntry = (await import(pathToFileURL(join(root, 'api/node.js')).href)).default;
    const edgeModule = await import(pathToFileURL(join(root, 'api/edge.js')).href);
    expect(edgeModule.config).toEqual({ runtime: 'edge' });
    edgeEntry = edgeModule.default;
  });

  afterAll(async () => {
    process.env = saved;
    await releaseProxy?.();
    await h?.close();
  });

  describe('api/node.js (Node.js runtime, postgres.js)', () => {
    const call = (path: string, init?: RequestInit) => nodeEntry.fetch(new Request(origin + path, init));

    it('answers /health, and refuses /v1 without a token', async () => {
      const health = await call('/health');
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ ok: true });
      expect((await call('/v1/audit')).status).toBe(401);
    });

    it('reserves, settles and releases', async () => {
      const key = uniqueId('key');
      const held = await call('/v1/reservations', json(tokens.service, { scopes: { key }, estimate: { cost: '0.50' } }));
      expect(held.status).toBe(201);
      const { id } = await held.json();
      const settled = await call(`/v1/reservations/${id}/settle`, json(tokens.service, { cost: '0.125' }));
      expect(await settled.json()).toMatchObject({ status: 'settled', actual_cost: '0.125000', released_cost: '0.375000' });

      const other = await (await call('/v1/reservations', json(tokens.service, { scopes: { key }, estimate: { cost: '1' } }))).json();
      const released = await call(`/v1/reservations/${other.id}/release`, json(tokens.service, {}));
      expect(await released.json()).toMatchObject({ status: 'released' });
      expect(await h.scope('key', key)).toMatchObject({ spend: '0.125000', reserved: '0.000000', in_flight: 0 });
    });

    it('is served at /api/node/... too, as when called by its own path', async () => {
      const reply = await call('/api/node/v1/models/openai/gpt-4o', { headers: bearer(tokens.service) });
      expect(reply.status).toBe(200);
      expect(await reply.json()).toMatchObject({ name: 'gpt-4o' });
      // A body comes along when the prefix is taken off.
      const held = await call('/api/node/v1/reservations', json(tokens.service, { scopes: { key: uniqueId('key') }, estimate: { cost: '0.3' } }));
      expect(held.status).toBe(201);
      expect(await held.json()).toMatchObject({ status: 'held', reserved_cost: '0.300000' });
    });

    it("the cron's GET /v1/sweep with CRON_SECRET expires the stale holds; without it, 401", async () => {
      const key = uniqueId('key');
      const stale = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '2' }, ttl_seconds: 60 });
      expect(stale.status).toBe(201);
      expect((await call('/v1/sweep')).status).toBe(401);
      const swept = await call('/v1/sweep', { headers: bearer(tokens.cron) });
      expect(swept.status).toBe(200);
      const body = await swept.json();
      expect(body.complete).toBe(true);
      expect(body.expired).toBeGreaterThanOrEqual(1);
      expect((await h.service('GET', `/v1/reservations/${stale.body.id}`)).body.status).toBe('expired');
      // The cron role may sweep and nothing else.
      expect((await call('/v1/reservations', json(tokens.cron, { scopes: { key }, estimate: { cost: '1' } }))).status).toBe(403);
    });

    it('keeps one small pool per instance: twenty requests at once open at most 3 connections', async () => {
      const server = postgres(h.url!, { max: 1, onnotice: () => {} });
      try {
        const connections = async () => {
          const [row] = await server<{ n: number }[]>`select count(*)::int as n from pg_stat_activity
            where datname = current_database() and pid <> pg_backend_pid()`;
          return row!.n;
        };
        const before = await connections();
        const key = uniqueId('key');
        const replies = await Promise.all(Array.from({ length: 20 }, () =>
          call('/v1/reservations', json(tokens.service, { scopes: { key }, estimate: { cost: '0.01' } }))));
        expect(replies.map((r) => r.status)).toEqual(Array(20).fill(201));
        expect((await connections()) - before).toBeLessThanOrEqual(3);
      } finally {
        await server.end();
      }
    });
  });

  describe('api/edge.js (Edge runtime, @neondatabase/serverless through a WebSocket proxy)', () => {
    /** Calls the function as the edge does, then waits for what it handed to waitUntil. */
    const call = async (path: string, init?: RequestInit) => {
      const pending: Promise<unknown>[] = [];
      const reply = await edgeEntry(new Request(origin + path, init), { waitUntil: (promise) => pending.push(promise) });
      await Promise.all(pending);
      return { reply, pending: pending.length };
    };

    it('reserves, settles and releases, each request on a pool of its own that it closes', async () => {
      const key = uniqueId('key');
      const held = await call('/v1/reservations', json(tokens.service, { scopes: { key }, estimate: { cost: '0.50' } }));
      expect(held.reply.status).toBe(201);
      expect(held.pending).toBe(1);
      const { id } = await held.reply.json();
      const settled = await call(`/v1/reservations/${id}/settle`, json(tokens.service, { cost: '0.2' }));
      expect(await settled.reply.json()).toMatchObject({ status: 'settled', actual_cost: '0.200000', released_cost: '0.300000' });

      const other = await (await call('/v1/reservations', json(tokens.service, { scopes: { key }, estimate: { cost: '1' } }))).reply.json();
      const released = await call(`/v1/reservations/${other.id}/release`, json(tokens.service, {}));
      expect(await released.reply.json()).toMatchObject({ status: 'released' });
      expect(await h.scope('key', key)).toMatchObject({ spend: '0.200000', reserved: '0.000000', in_flight: 0 });
      // No WebSocket outlives the request that opened it.
      await eventually('every WebSocket through the proxy is closed', () => proxyOpen() === 0);
    });

    it('answers /health and the cron sweep, and is served at /api/edge/... too', async () => {
      expect((await call('/health')).reply.status).toBe(200);
      const swept = await call('/api/edge/v1/sweep', { headers: bearer(tokens.cron) });
      expect(swept.reply.status).toBe(200);
      expect(await swept.reply.json()).toMatchObject({ complete: true });
      expect((await call('/v1/sweep')).reply.status).toBe(401);
      await eventually('every WebSocket through the proxy is closed', () => proxyOpen() === 0);
    });
  });
});
