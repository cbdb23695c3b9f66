import { expect } from 'vitest';
import { createApp } from '../../lib/app.ts';
import { manualClock, type ManualClock } from '../../lib/clock.ts';
import { loadConfig } from '../../lib/config.ts';
import type { Database } from '../../lib/db.ts';
import { type Backend, freshDatabase } from './databases.ts';
import { appDatabase, openTransport } from './transport.ts';

export const tokens = {
  admin: 'test-admin-token-000000000001',
  service: 'test-service-token-0000000001',
  cron: 'test-cron-secret-000000000001',
} as const;

export type Role = keyof typeof tokens | 'anonymous';

export interface Reply {
  status: number;
  // Tests read answers field by field; the shape is what the test asserts.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  headers: Headers;
}

export type Caller = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<Reply>;

export interface Harness {
  db: Database;
  url: string | null;
  clock: ManualClock;
  app: ReturnType<typeof createApp>;
  as(role: Role): Caller;
  admin: Caller;
  service: Caller;
  /** GET /v1/limits/{kind}/{id}, asserting 200: the scope's limit and live usage. */
  scope(kind: string, id: string): Promise<Reply['body']>;
  /** GET /v1/audit, asserting that every counter equals the ledger. */
  expectAuditOk(): Promise<void>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  env?: Record<string, string>;
  pool?: number;
  /** The time the manual clock starts at; `null` to use the database's own clock. */
  start?: string | null;
  /** Where the app's request log lines go; dropped by default. */
  logRequest?: (line: string) => void;
}

/** The app on a fresh database, with a manual clock, driven through its fetch handler: in process, or over HTTP
 * to a server process (TEST_SERVER), its queries through postgres.js, PGlite or the Neon driver (TEST_DRIVER). */
export async function startHarness(backend: Backend, options: HarnessOptions = {}): Promise<Harness> {
  const database = await freshDatabase(backend, { pool: options.pool });
  const clock = manualClock(options.start ?? '2026-03-10T12:00:00Z');
  const env = {
    SPENDGATE_ADMIN_TOKEN: tokens.admin,
    SPENDGATE_SERVICE_TOKEN: tokens.service,
    CRON_SECRET: tokens.cron,
    ...options.env,
  };
  const config = loadConfig(env, { allowGeneratedTokens: false });
  const driver = await appDatabase(database);
  const appClock = options.start === null ? undefined : clock;
  const app = createApp({
    db: driver.db,
    config,
    clock: appClock,
    logError: process.env.TEST_LOG_ERRORS ? undefined : () => {},
    logRequest: options.logRequest ?? (() => {}),
  });
  const transport = await openTransport(app, database, env, appClock, options.pool);
  const as = (role: Role): Caller => async (method, path, body, headers = {}) => {
    const init: RequestInit = {
      method,
      headers: {
        ...(role === 'anonymous' ? {} : { authorization: `Bearer ${tokens[role]}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    };
    const res = await transport.send(path, init);
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
  const admin = as('admin');
  return {
    db: database.db,
    url: database.url,
    clock,
    app,
    as,
    admin,
    service: as('service'),
    async scope(kind, id) {
      const reply = await as('service')('GET', `/v1/limits/${encodeURIComponent(kind)}/${encodeURIComponent(id)}`);
      expect(reply.status).toBe(200);
      return reply.body;
    },
    async expectAuditOk() {
      const audit = await admin('GET', '/v1/audit');
      expect(audit.status).toBe(200);
      expect(audit.body.mismatches).toEqual([]);
      expect(audit.body.ok).toBe(true);
    },
    async close() {
      await transport.close();
      await driver.close();
      await database.drop();
    },
  };
}

let counter = 0;
/** A scope id no other test uses, so tests can share one database. */
export function uniqueId(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 7)}`;
}

/** One scope of a reserve answer's `scopes`, as the concurrency tests read it. */
export interface ScopeEntry {
  kind: string;
  id: string;
  max_budget: string | null;
  spend: string;
  reserved: string;
  in_flight: number;
  max_parallel: number | null;
  rpm: number | null;
  tpm: number | null;
  requests_in_window: number;
  tokens_in_window: number;
}

/** The named scope of a reserve answer; throws when the answer does not list it. */
export function scopeOf(reply: Reply, kind: string, id: string): ScopeEntry {
  const entry = (reply.body.scopes as ScopeEntry[]).find((s) => s.kind === kind && s.id === id);
  if (!entry) throw new Error(`no ${kind} ${id} in ${JSON.stringify(reply.body)}`);
  return entry;
}
