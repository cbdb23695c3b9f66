import { OpenAPIHono, type z } from '@hono/zod-openapi';
import { swaggerUI } from '@hono/swagger-ui';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import { getPath } from 'hono/utils/url';
import type { App, AppEnv } from './app-env.ts';
import { authenticate } from './auth.ts';
import { type Clock, databaseClock } from './clock.ts';
import type { Config } from './config.ts';
import { DatabaseUnavailable, type Queryable } from './db.ts';
import { ApiError, errorResponse, type FieldIssue } from './errors.ts';
import { exactJsonNumbers } from './exact-json.ts';
import { keepJsonAnswers } from './json-answer.ts';
import { jsonDepthLimit } from './json-depth.ts';
import { createLedger } from './ledger.ts';
import { countDatabaseErrors, createMetrics, groupCommitMetrics, type Metrics, recordMetrics } from './metrics.ts';
import { requestLog, type RequestLogSink } from './request-log.ts';
import * as metricsRoute from './routes/metrics.ts';
import * as dashboardPage from './routes/dashboard_page.ts';
import * as health from './routes/health.ts';
import * as auditRoute from './routes/v1_audit.ts';
import * as dashboardRoute from './routes/v1_dashboard.ts';
import * as limitsDelete from './routes/v1_limits_delete.ts';
import * as limitsGet from './routes/v1_limits_get.ts';
import * as limitsList from './routes/v1_limits_list.ts';
import * as limitsPut from './routes/v1_limits_put.ts';
import * as modelsGet from './routes/v1_models_get.ts';
import * as modelsImport from './routes/v1_models_import.ts';
import * as modelsPut from './routes/v1_models_put.ts';
import * as eventsRoute from './routes/v1_events.ts';
import * as reservationsCheck from './routes/v1_reservations_check.ts';
import * as reservationsCreate from './routes/v1_reservations_create.ts';
import * as reservationsExtend from './routes/v1_reservations_extend.ts';
import * as reservationsGet from './routes/v1_reservations_get.ts';
import * as reservationsRelease from './routes/v1_reservations_release.ts';
import * as reservationsSettle from './routes/v1_reservations_settle.ts';
import * as sweep from './routes/v1_sweep.ts';
import { deliverDueEvents } from './webhooks.ts';

export interface AppDeps {
  db: Queryable;
  config: Config;
  /** Defaults to the database's clock; tests inject a manual one. */
  clock?: Clock;
  /** Where unexpected errors are reported (never with tokens or bodies). Defaults to console.error. */
  logError?: (message: string, error: unknown) => void;
  /** Where the one-JSON-line-per-request log goes. Defaults to console.log. */
  logRequest?: RequestLogSink;
  /** Counters for /metrics; one set per process by default. */
  metrics?: Metrics;
  /** What webhooks are POSTed with. Defaults to the runtime's fetch. */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

/** The whole HTTP API as a Hono app: Web-standard `fetch`, the same on Node, Deno and at the edge. */
export function createApp(deps: AppDeps): App {
  const metrics = deps.metrics ?? createMetrics();
  const clock = deps.clock ?? databaseClock;
  const db = countDatabaseErrors(deps.db, metrics);
  const ledger = createLedger(db, clock, deps.config.groupCommit, groupCommitMetrics(metrics));
  // Called through a wrapper: some runtimes refuse a fetch detached from globalThis.
  const webhookFetch = deps.fetch ?? ((input: string, init: RequestInit) => fetch(input, init));
  const deliverEvents = () => deliverDueEvents(db, webhookFetch, deps.config, clock);
  const logError = deps.logError ?? ((message, error) => console.error(message, error));
  const app: App = new OpenAPIHono<AppEnv>({
    getPath: modelNamesWithSlashes,
    defaultHook: (result) => {
      if (!result.success) throw ApiError.invalid(result.error.issues.flatMap(fieldIssues));
    },
  });

  app.use('*', keepJsonAnswers, requestId(), requestLog(deps.logRequest ?? ((line) => console.log(line))), recordMetrics(metrics), secureHeaders());
  app.use('*', async (c, next) => {
    c.set('ledger', ledger);
    c.set('config', deps.config);
    c.set('metrics', metrics);
    c.set('deliverEvents', deliverEvents);
    await next();
  });
  const tooLarge = (limit: number) => () => {
    const refused = ApiError.invalid([{ path: '', message: `the body is larger than ${limit} bytes` }]);
    // The rest of the body is never read, so the connection cannot carry another request: say so, or a client
    // that reuses it (keep-alive) finds it closed under its next call.
    throw new ApiError(refused.type, refused.message, refused.details, { connection: 'close' });
  };
  const utf8 = new TextDecoder();
  const limited = (maxSize: number): MiddlewareHandler<AppEnv> => {
    const streamed = bodyLimit({ maxSize, onError: tooLarge(maxSize) });
    return (c, next) => {
      const read = c.env?.body;
      if (read === undefined) return streamed(c, next);
      if (read.byteLength > maxSize) return tooLarge(maxSize)();
      // Where Hono's body readers (c.req.text(), json(), the validators) look first; decoded as Request.text() does.
      // The cache holds promises, though Hono types its entries as the values they resolve to.
      Object.assign(c.req.bodyCache, { text: Promise.resolve(utf8.decode(read)) });
      return next();
    };
  };
  const bodyLimits = {
    default: limited(deps.config.bodyLimit),
    // A reserve carries the model request it estimates, images and all.
    reserve: limited(deps.config.reserveBodyLimit),
    import: limited(deps.config.importBodyLimit),
  };
  app.use('/v1/*', authenticate(deps.config.tokens));
  app.use('/metrics', authenticate(deps.config.tokens));
  app.use('/v1/*', (c, next) => {
    const path = c.req.path;
    const limit = path === '/v1/reservations' || path === '/v1/reservations/check' ? bodyLimits.reserve : path === '/v1/models/import' ? bodyLimits.import : bodyLimits.default;
    return limit(c, next);
  });
  app.use('/v1/*', exactJsonNumbers);
  app.use('/v1/*', jsonDepthLimit);

  for (const route of [
    health, reservationsCheck, reservationsCreate, reservationsSettle, reservationsRelease, reservationsExtend, reservationsGet,
    limitsPut, limitsGet, limitsList, limitsDelete, modelsPut, modelsGet, modelsImport, sweep, auditRoute, eventsRoute,
    metricsRoute,
    dashboardRoute, dashboardPage,
  ]) {
    route.register(app);
  }

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'spendgate',
      version: '1',
      description: 'Exactly-once spend budgets and rate limits for LLM traffic, kept in Postgres alone.',
    },
  });
  app.get('/docs', swaggerUI({ url: '/openapi.json' }));

  app.notFound((c) => errorResponse(c, new ApiError('not_found', `No route ${c.req.method} ${c.req.path}.`)));
  app.onError((error, c) => errorResponseFor(c, error, logError));
  return app;
}

/** A zod issue as field issues: an unknown key becomes one issue naming that key. */
function fieldIssues(issue: z.core.$ZodIssue): FieldIssue[] {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: [...path, key].join('.'), message: 'unknown field; check its spelling against the API' }));
  }
  return [{ path: path.join('.'), message: issue.message }];
}

/** Model names may hold slashes (`openai/gpt-4o`): `/v1/models/openai/gpt-4o` routes as the one name, as if the
 * slashes were percent-encoded. */
function modelNamesWithSlashes(request: Request): string {
  const path = getPath(request);
  const name = /^\/v1\/models\/(.+)$/.exec(path)?.[1];
  return name?.includes('/') ? `/v1/models/${name.replaceAll('/', '%2F')}` : path;
}

function errorResponseFor(c: Context, error: unknown, logError: NonNullable<AppDeps['logError']>): Response {
  if (error instanceof ApiError) return errorResponse(c, error);
  if (error instanceof DatabaseUnavailable) {
    const message = error.outcomeUnknown
      ? 'The connection to the database was lost before it answered; the call may have been applied. Retry shortly with the same idempotency key (a repeated reserve, settle or release is applied once).'
      : 'The database cannot be reached or is busy; nothing was written. Retry shortly.';
    return errorResponse(c, new ApiError('unavailable', message, {}, { 'retry-after': '1' }));
  }
  if (error instanceof HTTPException) {
    if (error.status === 401) return error.getResponse();
    if (error.status === 415) {
      return errorResponse(c, ApiError.invalid([{ path: '', message: 'send the body as JSON with Content-Type: application/json' }]));
    }
    if (error.status === 400) return errorResponse(c, ApiError.invalid([{ path: '', message: error.message }]));
  }
  logError(`unexpected error on ${c.req.method} ${c.req.path}`, error);
  return errorResponse(c, new ApiError('internal', 'An unexpected error occurred and was logged. Retry with the same idempotency key to be safe from a second hold.'));
}
