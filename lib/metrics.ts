/**
 * What spendgate counts for `/metrics`: requests, reservations by outcome and refusal reason, settled cost,
 * reserve and settle latency, sweeps and the holds they expired, group commit's transactions, database errors.
 * Recorded from the answers the routes give (a middleware), so that no route has to know about metrics; group
 * commit reports its own (groupCommitMetrics).
 *
 * The settled-cost counter is a float, as every Prometheus sample is: good for graphs and alerts, never for
 * accounting. The ledger (`GET /v1/limits/...`) has the exact amounts.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { DatabaseUnavailable, type Queryable } from './db.ts';
import type { GroupCommitObserver } from './group-commit.ts';
import { jsonAnswer } from './json-answer.ts';
import { createRegistry, type Registry } from './prometheus.ts';

// Seconds; a reserve or settle is one SQL function call, usually a few milliseconds.
const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// A call's wait for its transaction is often well under a millisecond.
const waitBuckets = [0.0001, 0.00025, 0.0005, ...latencyBuckets];
// Calls per transaction, up to SPENDGATE_BATCH_MAX's highest value.
const batchBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000];

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics() {
  const registry: Registry = createRegistry();
  return {
    registry,
    requests: registry.counter('spendgate_http_requests_total', 'HTTP requests answered, by method, route and status.'),
    reservations: registry.counter('spendgate_reservations_total',
      'Reserve calls by outcome (held, replayed, refused, invalid, error) and, when refused, reason (budget_exceeded, rate_limit_exceeded, parallel_limit_exceeded).'),
    settles: registry.counter('spendgate_settles_total', 'Settle calls by outcome (settled, late, replayed, conflict, invalid, error).'),
    settledCost: registry.counter('spendgate_settled_cost_dollars_total',
      'Sum of the actual cost charged by settles, in US dollars (a float: for monitoring, not accounting).'),
    reserveSeconds: registry.histogram('spendgate_reserve_duration_seconds', 'Time to answer a reserve (the hold).', latencyBuckets),
    settleSeconds: registry.histogram('spendgate_settle_duration_seconds', 'Time to answer a settle.', latencyBuckets),
    sweeps: registry.counter('spendgate_sweeps_total', 'Sweep calls answered.'),
    sweptHolds: registry.counter('spendgate_swept_holds_total', 'Held reservations the sweeper expired.'),
    callsPerTransaction: registry.histogram('spendgate_ledger_calls_per_transaction',
      'Reserves and settles per ledger transaction (group commit; SPENDGATE_BATCH_MAX at most).', batchBuckets),
    transactionSeconds: registry.histogram('spendgate_ledger_transaction_duration_seconds',
      'Time from sending a ledger transaction of reserves and settles to its answer.', latencyBuckets),
    queueSeconds: registry.histogram('spendgate_ledger_queue_wait_seconds',
      'Time a reserve or settle waited for its transaction to be sent (for a batch slot, SPENDGATE_BATCH_CONCURRENCY).', waitBuckets),
    databaseErrors: registry.counter('spendgate_database_errors_total',
      'Database calls that failed, by kind: unavailable (unreachable, busy, a lock timeout; retryable) or other.'),
  };
}

/** Counts each answer into the metrics it concerns. */
export function recordMetrics(metrics: Metrics): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    const route = routeOf(c);
    const status = c.res.status;
    metrics.requests.inc({ method: c.req.method, route, status: String(status) });
    if (c.req.method === 'POST' && route === '/v1/reservations') {
      metrics.reserveSeconds.observe(seconds);
      metrics.reservations.inc(await reserveOutcome(c));
    } else if (c.req.method === 'POST' && route === '/v1/reservations/:id/settle') {
      metrics.settleSeconds.observe(seconds);
      await countSettle(c, metrics);
    } else if (route === '/v1/sweep' && status === 200) {
      const body = await jsonAnswer(c);
      metrics.sweeps.inc();
      if (typeof body.expired === 'number') metrics.sweptHolds.inc({}, body.expired);
    }
  };
}

/** The route the request matched ("/v1/reservations/:id"), or "unmatched": ids never become label values. */
function routeOf(c: Context): string {
  const path = routePath(c, -1);
  return path === '' || path.endsWith('*') ? 'unmatched' : path;
}

async function reserveOutcome(c: Context): Promise<Record<string, string>> {
  const status = c.res.status;
  if (status === 201) return { outcome: 'held' };
  if (status === 200) return { outcome: 'replayed' };
  if (status === 429) return { outcome: 'refused', reason: errorType(await jsonAnswer(c)) };
  if (status === 400) return { outcome: 'invalid' };
  return { outcome: 'error' };
}

async function countSettle(c: Context, metrics: Metrics): Promise<void> {
  const status = c.res.status;
  if (status !== 200) {
    metrics.settles.inc({ outcome: status === 409 ? 'conflict' : status === 400 ? 'invalid' : 'error' });
    return;
  }
  if (c.res.headers.get('idempotent-replayed') === 'true') {
    metrics.settles.inc({ outcome: 'replayed' }); // charged once, by the first settle
    return;
  }
  const body = await jsonAnswer(c);
  metrics.settles.inc({ outcome: body.late === true ? 'late' : 'settled' });
  if (typeof body.actual_cost === 'string') metrics.settledCost.inc({}, Number(body.actual_cost));
}

function errorType(body: Record<string, unknown>): string {
  const error = body.error as { type?: unknown } | undefined;
  return typeof error?.type === 'string' ? error.type : 'unknown';
}

/** Group commit's transactions and waits, as metrics. */
export function groupCommitMetrics(metrics: Metrics): GroupCommitObserver {
  return {
    transaction(calls, seconds) {
      metrics.callsPerTransaction.observe(calls);
      metrics.transactionSeconds.observe(seconds);
    },
    waited: (seconds) => metrics.queueSeconds.observe(seconds),
  };
}

/** The database, counting the calls that fail. */
export function countDatabaseErrors(db: Queryable, metrics: Metrics): Queryable {
  return {
    async query(text, params) {
      try {
        return await db.query(text, params);
      } catch (error) {
        metrics.databaseErrors.inc({ kind: error instanceof DatabaseUnavailable ? 'unavailable' : 'other' });
        throw error;
      }
    },
  };
}
