// Who may call what, for every route the app serves: the routes are read from the app itself (its OpenAPI
// document and its router), so a route added without a line in the policy below fails here. Tokens are compared as
// SHA-256 digests in constant time, against every configured token; and no token reaches a log.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp } from '../lib/app.ts';
import { loadConfig } from '../lib/config.ts';
import { sha256Hex } from '../lib/hash.ts';
import type { Queryable } from '../lib/db.ts';
import { startHarness, type Harness, tokens, uniqueId } from './support/harness.ts';

// Counts every token comparison (of digests, as hex), passing each through to the constant-time comparison.
const compared = vi.hoisted(() => ({ calls: [] as Array<[string, string]> }));
vi.mock('../lib/constant-time.ts', async (importOriginal) => {
  const original = await importOriginal<typeof import('../lib/constant-time.ts')>();
  const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return {
    ...original,
    equalInConstantTime: (a: Uint8Array, b: Uint8Array) => {
      compared.calls.push([hex(a), hex(b)]);
      return original.equalInConstantTime(a, b);
    },
  };
});

type Role = 'admin' | 'service' | 'cron';

/** The policy: the roles besides admin that may call each route; 'public' needs no token. */
const policy: Record<string, readonly Role[] | 'public'> = {
  'POST /v1/reservations': ['service'],
  'POST /v1/reservations/check': ['service'],
  'GET /v1/reservations/{id}': ['service'],
  'POST /v1/reservations/{id}/settle': ['service'],
  'POST /v1/reservations/{id}/release': ['service'],
  'POST /v1/reservations/{id}/extend': ['service'],
  'GET /v1/limits': ['service'],
  'GET /v1/limits/{kind}/{id}': ['service'],
  'PUT /v1/limits/{kind}/{id}': [],
  'DELETE /v1/limits/{kind}/{id}': [],
  'GET /v1/models/{name}': ['service'],
  'PUT /v1/models/{name}': [],
  'POST /v1/models/import': [],
  'GET /v1/events': ['service'],
  'POST /v1/sweep': ['cron'],
  'GET /v1/sweep': ['cron'],
  'GET /v1/audit': [],
  'GET /v1/dashboard': [],
  'GET /metrics': [],
  'GET /health': 'public',
  'GET /openapi.json': 'public',
  'GET /docs': 'public',
  // The dashboard's page and files hold no data; its script reads /v1/dashboard with the admin token.
  'GET /dashboard': 'public',
  'GET /dashboard/app.js': 'public',
  'GET /dashboard/app.css': 'public',
};

const callers = {
  admin: `Bearer ${tokens.admin}`,
  service: `Bearer ${tokens.service}`,
  cron: `Bearer ${tokens.cron}`,
  anonymous: null,
  'wrong token': 'Bearer test-wrong-token-0000000000001',
} as const;
type Caller = keyof typeof callers;

describe('the policy covers every route the app serves', () => {
  let h: Harness;
  let served: string[] = [];
  beforeAll(async () => {
    h = await startHarness('pglite');
    const doc = (await h.as('anonymous')('GET', '/openapi.json')).body;
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
      Object.keys(item).filter((m) => ['get', 'put', 'post', 'delete', 'patch'].includes(m)).map((m) => `${m.toUpperCase()} ${path}`),
    );
    // The router too, for a route registered without an OpenAPI definition: Hono writes parameters as ":id".
    const routed = h.app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`);
    served = [...new Set([...documented, ...routed])].sort();
  });
  afterAll(() => h?.close());
  afterEach(() => h.expectAuditOk());

  it('every route served has a line in the policy, and every line a route', () => {
    expect(served).toEqual(Object.keys(policy).sort());
  });

  it('every route × every caller: allowed, 403 forbidden or 401 unauthorized, before anything is validated or written', async () => {
    let checked = 0;
    for (const route of served) {
      const [method, template] = route.split(' ') as [string, string];
      const allowed = policy[route]!;
      for (const [caller, authorization] of Object.entries(callers) as Array<[Caller, string | null]>) {
        // Ids that do not exist and a body that is valid for no route: an allowed caller gets its 400 or 404, and
        // nothing is ever written.
        const path = template.replace('{id}', '00000000-0000-4000-8000-000000000000').replace('{kind}', 'team').replace('{name}', uniqueId('model'));
        const reply = await h.as('anonymous')(method, path, method === 'GET' || method === 'DELETE' ? undefined : { 'not a field': true }, authorization ? { authorization } : {});
        const what = `${route} as ${caller}: ${reply.status} ${JSON.stringify(reply.body).slice(0, 200)}`;
        if (allowed === 'public' || caller === 'admin' || (caller !== 'anonymous' && caller !== 'wrong token' && allowed.includes(caller))) {
          expect([401, 403], what).not.toContain(reply.status);
          expect(reply.status, what).toBeLessThan(500);
        } else if (caller === 'anonymous' || caller === 'wrong token') {
          expect(reply.status, what).toBe(401);
          expect(reply.body.error.type, what).toBe('unauthorized');
        } else {
          expect(reply.status, what).toBe(403);
          expect(reply.body.error.type, what).toBe('forbidden');
        }
        checked += 1;
      }
    }
    expect(checked).toBe(Object.keys(policy).length * Object.keys(callers).length);
    console.log(`security: ${served.length} routes × ${Object.keys(callers).length} callers checked against the policy`);
  });
});

describe('tokens', () => {
  const config = loadConfig(
    { SPENDGATE_ADMIN_TOKEN: tokens.admin, SPENDGATE_SERVICE_TOKEN: tokens.service, CRON_SECRET: tokens.cron },
    { allowGeneratedTokens: false },
  );

  it('are compared as digests in constant time, with every configured token whichever matches', async () => {
    const db: Queryable = { query: async () => [{ result: { ok: true, scopes_checked: 0, mismatches: [] } }] as never[] };
    const app = createApp({ db, config });
    for (const [sent, status] of [
      [tokens.service, 403],
      [tokens.admin, 200],
      [tokens.cron, 403],
      ['test-wrong-token-0000000000001', 401],
      [tokens.admin.slice(0, -1), 401],
    ] as const) {
      compared.calls = [];
      const res = await app.request('/v1/audit', { headers: { authorization: `Bearer ${sent}` } });
      expect(res.status, sent).toBe(status);
      // The same three comparisons whatever was sent: the time taken does not tell which token matched, if any.
      const [digest, admin, service, cron] = await Promise.all([sent, tokens.admin, tokens.service, tokens.cron].map(sha256Hex));
      expect(compared.calls).toEqual([[digest, admin], [digest, service], [digest, cron]]);
    }
  });

  it('never reach a log, also when a request fails unexpectedly', async () => {
    const logged: string[] = [];
    const capture = (...args: unknown[]) => {
      logged.push(args.map((a) => (a instanceof Error ? `${a.stack} ${JSON.stringify(a)} ${String(a.cause)}` : typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
    };
    const spies = (['log', 'error', 'warn', 'info', 'debug'] as const).map((level) => vi.spyOn(console, level).mockImplementation(capture));
    try {
      // A database that fails in a way spendgate does not expect: every call is a 500, and is logged.
      const db: Queryable = {
        query: async () => {
          throw Object.assign(new Error('relation "spendgate.counters" does not exist'), { code: '42P01' });
        },
      };
      const app = createApp({ db, config });
      const withHeaders = { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/json', 'idempotency-key': 'k-1' };
      const calls: Array<[string, string, unknown]> = [
        ['POST', '/v1/reservations', { scopes: { key: 'sk-1' }, estimate: { cost: '0.1' } }],
        ['POST', '/v1/reservations/00000000-0000-4000-8000-000000000000/settle', { cost: '0.1' }],
        ['GET', '/v1/audit', undefined],
        ['PUT', '/v1/limits/team/t-1', { max_budget: '1' }],
      ];
      for (const [method, path, body] of calls) {
        const res = await app.request(path, { method, headers: withHeaders, body: body === undefined ? undefined : JSON.stringify(body) });
        expect(res.status, path).toBe(500);
        expect(await res.text()).not.toContain(tokens.admin);
      }
      // And with the default logger replaced: what it is handed holds no token either.
      const handed: unknown[] = [];
      const logging = createApp({ db, config, logError: (message, error) => handed.push(message, error) });
      expect((await logging.request('/v1/audit', { headers: withHeaders })).status).toBe(500);
      capture(...handed);
      expect(logged.length).toBeGreaterThanOrEqual(calls.length + 1);
      for (const line of logged) {
        for (const token of Object.values(tokens)) expect(line).not.toContain(token);
        expect(line).not.toContain('authorization');
      }
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });
});
