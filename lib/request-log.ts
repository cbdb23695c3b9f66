/**
 * One JSON line per request, for any log pipeline: when, which request (its id, taken from an incoming
 * x-request-id or made up, and sent back in the answer's x-request-id), what route, the answer's status and error
 * type, how long it took, and which role called. Never a header, a body or a query string: tokens, prompts and
 * provider requests stay out of the logs.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { AppEnv } from './app-env.ts';
import { jsonAnswer } from './json-answer.ts';

/** Where the lines go; the default is the console (stdout on Node and Deno, the platform's log at the edge). */
export type RequestLogSink = (line: string) => void;

export function requestLog(sink: RequestLogSink): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    await next();
    const status = c.res.status;
    const route = routePath(c, -1);
    sink(JSON.stringify({
      time: new Date().toISOString(),
      level: status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info',
      msg: 'request',
      request_id: c.get('requestId'),
      method: c.req.method,
      route: route === '' || route.endsWith('*') ? null : route,
      path: c.req.path,
      status,
      error: status >= 400 ? await errorType(c) : undefined,
      duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
      role: c.get('role') ?? null,
    }));
  };
}

async function errorType(c: Context): Promise<string | null> {
  const error = (await jsonAnswer(c)).error;
  return typeof error === 'object' && error !== null && 'type' in error && typeof error.type === 'string' ? error.type : null;
}
