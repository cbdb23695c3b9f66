/**
 * `withBudget`: reserve → call → settle, or release, so that no caller has to get the order or the failure paths
 * right by hand.
 *
 * - The call throws: the hold is released and the error rethrown.
 * - The call returns an answer: settled from its `usage` (or Gemini's `usageMetadata`), sent to spendgate as the
 *   provider wrote it. An answer without usage is charged its whole hold: an unknown cost is never charged as 0.
 * - The call returns a stream (any async iterable, as the official SDKs' `stream: true` calls do): the same stream
 *   object comes back, metered. While it is being read the hold is extended; when it ends it is settled from the
 *   final usage chunk (OpenAI needs `stream_options: {include_usage: true}`, else the whole hold is charged).
 *   Stopped by the reader (a `break`) before any output: settled at the input cost only, since providers bill the
 *   prompt of a cancelled stream. Stopped after output without a final usage: the whole hold. Failed before any
 *   output: released, as a call that throws. Read the stream by iterating it: an SDK's `tee()` or
 *   `toReadableStream()` reads the underlying stream past the meter.
 */
import type { SpendgateClient } from './client.ts';
import type { ProviderObject, ReserveRequest, Reserved, Settled, SettleRequest } from './client-types.ts';
import { createStreamUsage, type StreamUsage } from './stream-usage.ts';

export interface WithBudgetOptions {
  scopes: ReserveRequest['scopes'];
  model: string;
  /** The request about to be sent to the provider: read by spendgate to estimate the hold. */
  request: ProviderObject;
  /** Lifetime of the hold; a stream's hold is extended by as much again every `extendEveryMs`. Default 600. */
  ttlSeconds?: number;
  /** Default: a third of the ttl, so that two extensions can fail before the hold expires. */
  extendEveryMs?: number;
  /** Default: a fresh one, reused by the client's retries of the reserve. */
  idempotencyKey?: string;
  /** Told the settlement (actual cost, released part) once the call is charged. */
  onSettle?: (settled: Settled) => void;
}

export async function withBudget<T>(client: SpendgateClient, options: WithBudgetOptions,
                                    call: (hold: Reserved) => T | Promise<T>): Promise<T> {
  const ttl = options.ttlSeconds ?? 600;
  const hold = await client.reservations.create(
    { scopes: options.scopes, model: options.model, request: options.request, ttl_seconds: ttl },
    { idempotencyKey: options.idempotencyKey },
  );
  let result: T;
  try {
    result = await call(hold);
  } catch (error) {
    await releaseQuietly(client, hold.id);
    throw error;
  }
  if (isAsyncIterable(result)) return meteredStream(client, hold, result, { ...options, ttlSeconds: ttl });
  const usage = answerUsage(result);
  await settle(client, hold, usage ? { usage } : { cost: hold.reserved_cost }, options.onSettle);
  return result;
}

type StreamOptions = WithBudgetOptions & { ttlSeconds: number };

/** The stream itself (its other methods and fields work as before), iterating through the meter. */
function meteredStream<S extends AsyncIterable<unknown>>(client: SpendgateClient, hold: Reserved, stream: S,
                                                        options: StreamOptions): S {
  const iterate = () => meter(client, hold, stream, options)[Symbol.asyncIterator]();
  return new Proxy(stream, {
    get(target, property) {
      if (property === Symbol.asyncIterator) return iterate;
      const value: unknown = Reflect.get(target, property, target);
      // SDK streams keep private fields: their methods must run on the stream itself, not on the proxy.
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

async function* meter<C>(client: SpendgateClient, hold: Reserved, stream: AsyncIterable<C>,
                         options: StreamOptions): AsyncGenerator<C> {
  const usage = createStreamUsage();
  const everyMs = options.extendEveryMs ?? (options.ttlSeconds * 1000) / 3;
  let ended: 'complete' | 'failed' | 'stopped' = 'stopped';
  const extender = setInterval(() => {
    client.reservations.extend(hold.id, { ttl_seconds: options.ttlSeconds }).catch(() => {
      // A failed extension is retried at the next tick; if the hold expires meanwhile, the settle is late and
      // still charges once.
    });
  }, everyMs);
  // Node: a stream nobody finishes must not keep the process alive.
  (extender as { unref?: () => void }).unref?.();
  try {
    for await (const chunk of stream) {
      usage.observe(chunk);
      yield chunk;
    }
    ended = 'complete';
  } catch (error) {
    ended = 'failed';
    throw error;
  } finally {
    clearInterval(extender);
    const body = streamSettlement(hold, usage, ended);
    if (body === null) await releaseQuietly(client, hold.id);
    else await settle(client, hold, body, options.onSettle);
  }
}

/** What to settle a stream with, by how it ended; null to release. */
function streamSettlement(hold: Reserved, usage: StreamUsage, ended: 'complete' | 'failed' | 'stopped'): SettleRequest | null {
  const final = usage.finalUsage();
  if (final) return { usage: final };
  if (!usage.sawOutput()) {
    if (ended === 'failed') return null;
    if (ended === 'stopped') {
      // The input cost only: the provider's own count when it sent one, else the hold's estimate of the input.
      return { usage: usage.inputUsage() ?? { input_tokens: hold.estimate.input_tokens, output_tokens: 0 } };
    }
  }
  return { cost: hold.reserved_cost };
}

async function settle(client: SpendgateClient, hold: Reserved, body: SettleRequest,
                      onSettle: WithBudgetOptions['onSettle']): Promise<void> {
  const settled = await client.reservations.settle(hold.id, body);
  onSettle?.(settled);
}

// The caller's own error is what matters; a hold that cannot be released expires on its own.
async function releaseQuietly(client: SpendgateClient, id: string): Promise<void> {
  await client.reservations.release(id).catch(() => {});
}

function answerUsage(answer: unknown): ProviderObject | null {
  if (typeof answer !== 'object' || answer === null) return null;
  const { usage, usageMetadata } = answer as { usage?: unknown; usageMetadata?: unknown };
  if (typeof usage === 'object' && usage !== null) return usage;
  if (typeof usageMetadata === 'object' && usageMetadata !== null) return { usageMetadata };
  return null;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
