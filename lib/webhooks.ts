import type { Clock } from './clock.ts';
import type { Config } from './config.ts';
import type { Queryable } from './db.ts';
import { webhookSignature } from './webhook-signature.ts';
import type { WebhookSettings } from './webhook-settings.ts';

/** An event as the outbox hands it out: the same shape as GET /v1/events. */
export interface OutboxEvent {
  event_id: string;
  type: string;
  scope: Record<string, unknown>;
  period_start: string | null;
  created_at: string;
  details: Record<string, unknown>;
}

export interface DeliveryReport {
  delivered: number;
  failed: number;
  /** False when the call stopped after its last batch with more events still due; the next call goes on. */
  complete: boolean;
}

export interface DeliveryOptions {
  /** Events claimed (and then sent at once) per round trip. */
  batchSize?: number;
  /** Batches per call, so that a cron invocation ends in bounded time. */
  maxBatches?: number;
  /** How long one POST may take before it counts as failed. */
  timeoutMs?: number;
}

const defaults = { batchSize: 20, maxBatches: 5, timeoutMs: 10_000 } as const;

/** A claimed event stays out of other deliverers' reach this long: well past the POST timeout. */
const leaseSeconds = 120;

/** Retry delay after the n-th failed attempt: 1 minute, doubling each time, at most 6 hours; never given up on. */
export function retryDelaySeconds(attempt: number): number {
  return Math.min(60 * 2 ** Math.max(0, Math.min(attempt - 1, 20)), 6 * 60 * 60);
}

type Fetch = (input: string, init: RequestInit) => Promise<Response>;

interface Outcome {
  event_id: string;
  delivered: boolean;
  error?: string;
  retry_in_seconds?: number;
}

/**
 * Delivers the events of the outbox (`spendgate.events`) that are due to SPENDGATE_WEBHOOK_URL: claims a batch
 * (SKIP LOCKED plus a lease, so deliverers running at once never send one event at the same time), POSTs each one
 * signed, and records each outcome; a failure is retried after retryDelaySeconds. At least once: an event is marked
 * delivered only after a 2xx, so a crash between the two sends it again, with the same webhook-id.
 * Returns null when no webhook is configured.
 */
export async function deliverDueEvents(db: Queryable, fetch: Fetch, config: Pick<Config, 'webhook'>, clock: Clock,
                                       options: DeliveryOptions = {}): Promise<DeliveryReport | null> {
  const settings = config.webhook;
  if (!settings) return null;
  const { batchSize, maxBatches, timeoutMs } = { ...defaults, ...options };
  const at = () => clock.now()?.toISOString() ?? null;
  const report: DeliveryReport = { delivered: 0, failed: 0, complete: true };
  for (let batch = 0; batch < maxBatches; batch++) {
    const [row] = await db.query<{ claimed: Array<{ attempt: number; event: OutboxEvent }> }>(
      'select spendgate.claim_events($1::integer, $2::integer, $3::timestamptz) as claimed', [batchSize, leaseSeconds, at()]);
    const claimed = row?.claimed ?? [];
    if (claimed.length === 0) return report;
    const outcomes = await Promise.all(claimed.map(({ attempt, event }) =>
      deliverOne(settings, fetch, clock, event, attempt, timeoutMs)));
    await db.query('select spendgate.record_deliveries($1::text::jsonb, $2::timestamptz)', [JSON.stringify(outcomes), at()]);
    for (const outcome of outcomes) {
      if (outcome.delivered) report.delivered++;
      else report.failed++;
    }
    if (claimed.length < batchSize) return report;
  }
  report.complete = false;
  return report;
}

async function deliverOne(settings: WebhookSettings, fetch: Fetch, clock: Clock, event: OutboxEvent, attempt: number,
                          timeoutMs: number): Promise<Outcome> {
  const body = JSON.stringify({ type: event.type, timestamp: event.created_at, data: event });
  const timestamp = Math.floor((clock.now() ?? new Date()).getTime() / 1000);
  const failed = (error: string): Outcome =>
    ({ event_id: event.event_id, delivered: false, error, retry_in_seconds: retryDelaySeconds(attempt) });
  try {
    const response = await fetch(settings.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'spendgate-webhooks',
        'webhook-id': event.event_id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': await webhookSignature(settings.key, event.event_id, timestamp, body),
      },
      body,
      // A redirect would carry the signed event somewhere not configured: it counts as a failure.
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    // Drain the body so the connection can be reused; what the receiver says does not matter.
    await response.body?.cancel().catch(() => {});
    if (response.status >= 200 && response.status < 300) return { event_id: event.event_id, delivered: true };
    return failed(`HTTP ${response.status}`);
  } catch (error) {
    const name = error instanceof Error ? error.name : '';
    if (name === 'TimeoutError' || name === 'AbortError') return failed(`no answer within ${timeoutMs} ms`);
    return failed(`could not POST: ${error instanceof Error ? error.message : String(error)}`);
  }
}
