// What a serverless entry point (Vercel, Supabase) adds to the app: its configuration read once per instance from
// the platform's environment, with tokens required (a deployed function is public); its database, opened once per
// instance or once per request; and the path prefix the platform puts in front of the routes.
import { createApp } from '../lib/app.ts';
import { type Config, ConfigError, loadConfig } from '../lib/config.ts';
import type { Database } from '../lib/db.ts';
import { withoutPathPrefix } from '../lib/path-prefix.ts';

type Env = Record<string, string | undefined>;

export interface ServerlessOptions {
  /** The platform's environment variables; read at the first request, not at import (builds import the module). */
  env: () => Env;
  /** Reads the database settings from the environment (throwing ConfigError when they are wrong) and returns what
   * opens a connection pool. */
  database: (env: Env) => () => Database;
  /** `instance`: one pool per instance, kept across the requests it serves (postgres.js over TCP). `request`: a
   * pool per request, closed once the answer is out, for runtimes where a connection may not outlive the request
   * that opened it (Neon's WebSocket at the edge). */
  lifetime: 'instance' | 'request';
  /** A path prefix the platform adds, taken off before routing; paths without it are served too. */
  prefix?: string;
}

/** What the platform may pass along with the request: the edge's waitUntil keeps the instance alive past the
 * response until the pool has closed. */
export interface InvocationContext {
  waitUntil?(promise: Promise<unknown>): void;
}

export type ServerlessHandler = (request: Request, context?: InvocationContext) => Promise<Response>;

type Setup =
  | { ok: true; config: Config; open: () => Database; app: ReturnType<typeof createApp> | null }
  | { ok: false };

export function serverlessHandler(options: ServerlessOptions): ServerlessHandler {
  let setup: Setup | undefined;
  const prepare = (): Setup => {
    if (setup) return setup;
    const env = options.env();
    const problems: string[] = [];
    // Both checked, so that one log line names everything that is missing.
    const checked = <T>(read: () => T): T | null => {
      try {
        return read();
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        problems.push(error.message);
        return null;
      }
    };
    const config = checked(() => loadConfig(env, { allowGeneratedTokens: false }));
    const open = checked(() => options.database(env));
    if (!config || !open) {
      console.error(`spendgate: not configured, answering 500 to every request:\n${problems.join('\n')}`);
      return (setup = { ok: false });
    }
    return (setup = { ok: true, config, open, app: options.lifetime === 'instance' ? createApp({ db: open(), config }) : null });
  };

  return async (incoming, context) => {
    const ready = prepare();
    if (!ready.ok) return notConfigured();
    const request = options.prefix ? withoutPathPrefix(options.prefix, incoming) : incoming;
    if (ready.app) return ready.app.fetch(request);
    const db = ready.open();
    try {
      return await createApp({ db, config: ready.config }).fetch(request);
    } finally {
      // Every answer is complete when fetch returns (no streamed bodies), so the pool has nothing left to do.
      const closed = db.close().catch(() => {});
      if (context?.waitUntil) context.waitUntil(closed);
      else await closed;
    }
  };
}

/** The database URL every serverless entry needs. */
export function requireDatabaseUrl(env: Env): string {
  const url = env.DATABASE_URL?.trim();
  if (!url) throw new ConfigError('DATABASE_URL is not set.');
  return url;
}

function notConfigured(): Response {
  const message = 'spendgate is not configured: the function log names the missing or invalid settings.';
  return Response.json({ error: { type: 'internal', message } }, { status: 500 });
}
