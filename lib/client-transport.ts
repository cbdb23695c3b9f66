/**
 * How the client talks to spendgate: `fetch` only (Node, Deno, browsers, edge runtimes), a timeout per attempt,
 * and retries with backoff where a retry is safe and may help: no answer (network failure, timeout) or a 503, which
 * spendgate sends only when nothing was written. Every route is safe to retry: a reserve carries an idempotency key
 * and settle, release, extend and the admin writes are idempotent.
 */
import { ConnectionError, errorFromAnswer, retryAfterSeconds, SpendgateError, TimeoutError } from './client-errors.ts';

export type FetchFunction = (request: Request) => Response | Promise<Response>;

export interface TransportOptions {
  /** Where spendgate answers, e.g. `https://spendgate.internal:8787`. */
  url: string;
  /** Bearer token of the role to call as (service for reservations, admin for everything). */
  token: string;
  /** Defaults to the global fetch; pass `app.fetch` to talk to an in-process app. */
  fetch?: FetchFunction;
  /** Milliseconds one attempt may take, answer body included. Default 10 000. */
  timeoutMs?: number;
  /** Further attempts after the first when no answer came or the answer was 503. Default 2. */
  retries?: number;
  /** Milliseconds to wait before retry number `attempt` (1, 2, ...); default exponential from 200 ms with jitter. */
  retryDelayMs?: (attempt: number) => number;
}

export interface CallOptions {
  /** Cancels the call; a cancelled call is never retried and rejects with the signal's reason. */
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface SendOptions extends CallOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  /** Read the answer as text instead of JSON. */
  text?: boolean;
}

export interface Answer<T> {
  status: number;
  headers: Headers;
  body: T;
}

export type Send = <T>(method: string, path: string, options?: SendOptions) => Promise<Answer<T>>;

const defaultRetryDelay = (attempt: number) => Math.min(200 * 2 ** (attempt - 1), 5000) * (0.5 + Math.random() / 2);
// A 503's Retry-After is honoured up to this many seconds; longer and the caller had better decide.
const maxRetryAfterSeconds = 10;

export function createTransport(options: TransportOptions): Send {
  const base = options.url.replace(/\/+$/, '');
  const doFetch: FetchFunction = options.fetch ?? ((request) => fetch(request));
  const retries = options.retries ?? 2;
  const retryDelay = options.retryDelayMs ?? defaultRetryDelay;

  return async function send<T>(method: string, path: string, call: SendOptions = {}): Promise<Answer<T>> {
    const url = new URL(base + path);
    for (const [name, value] of Object.entries(call.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    for (let attempt = 0; ; attempt++) {
      const outcome = await attemptOnce<T>(doFetch, url, method, call, options);
      if (outcome.ok) return outcome.answer;
      const { error } = outcome;
      if (!outcome.retryable || attempt >= retries) throw error;
      const waitSeconds = error.status === 503 ? outcome.retryAfter : null;
      const delay = waitSeconds !== null ? Math.min(waitSeconds, maxRetryAfterSeconds) * 1000 : retryDelay(attempt + 1);
      await sleep(delay, call.signal);
    }
  };
}

type Outcome<T> =
  | { ok: true; answer: Answer<T> }
  | { ok: false; error: SpendgateError; retryable: boolean; retryAfter: number | null };

async function attemptOnce<T>(doFetch: FetchFunction, url: URL, method: string, call: SendOptions,
                              options: TransportOptions): Promise<Outcome<T>> {
  const timeout = AbortSignal.timeout(call.timeoutMs ?? options.timeoutMs ?? 10_000);
  const signal = call.signal ? AbortSignal.any([call.signal, timeout]) : timeout;
  const headers: Record<string, string> = { authorization: `Bearer ${options.token}`, accept: 'application/json' };
  if (call.body !== undefined) headers['content-type'] = 'application/json';
  try {
    const request = new Request(url, {
      method,
      headers,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      signal,
    });
    const response = await doFetch(request);
    const text = await response.text();
    if (response.ok) {
      return { ok: true, answer: { status: response.status, headers: response.headers, body: (call.text ? text : parseJson(text)) as T } };
    }
    return {
      ok: false,
      error: errorFromAnswer(response.status, parseJson(text), response.headers),
      retryable: response.status === 503,
      retryAfter: retryAfterSeconds(response.headers),
    };
  } catch (cause) {
    if (call.signal?.aborted) throw call.signal.reason;
    if (timeout.aborted) {
      return { ok: false, retryable: true, retryAfter: null, error: new TimeoutError({ type: 'timeout', status: null, cause, message: `spendgate did not answer ${method} ${url.pathname} in time` }) };
    }
    return { ok: false, retryable: true, retryAfter: null, error: new ConnectionError({ type: 'connection_error', status: null, cause, message: `cannot reach spendgate at ${url.origin}: ${describe(cause)}` }) };
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // undici puts the reason (ECONNREFUSED ...) in the cause of its "fetch failed".
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return error.message + cause;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
