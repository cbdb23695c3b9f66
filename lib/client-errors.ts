/**
 * The client's errors: every failure of a spendgate call is a SpendgateError, and the ones a caller acts on
 * differently have their own class, so `catch (e) { if (e instanceof BudgetExceededError) ... }` needs no string
 * matching.
 */

/** The scope a refusal names (`model` for a model limit). */
export interface RefusedScope {
  kind: string;
  id: string;
  model?: string;
}

export interface ErrorInit {
  type: string;
  message: string;
  /** HTTP status of the answer; null when no answer came (network failure, timeout). */
  status: number | null;
  /** The error body's fields other than type and message (`issues`, `scope`, `max_budget`, ...). */
  details?: Record<string, unknown>;
  /** Retry-After of the answer, in seconds. */
  retryAfter?: number | null;
  /** The answer's x-request-id: the server's log line for this request carries it. */
  requestId?: string | null;
  cause?: unknown;
}

export class SpendgateError extends Error {
  override name = 'SpendgateError';
  /** `error.type` of the answer (`invalid_request`, `not_found`, `conflict`, ...), or `connection_error` / `timeout`. */
  readonly type: string;
  readonly status: number | null;
  readonly details: Record<string, unknown>;
  readonly requestId: string | null;
  constructor(init: ErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.type = init.type;
    this.status = init.status;
    this.details = init.details ?? {};
    this.requestId = init.requestId ?? null;
  }
}

/** 400: `details.issues` lists each field (dotted path) and its problem. */
export class InvalidRequestError extends SpendgateError {
  override name = 'InvalidRequestError';
  get issues(): Array<{ path: string; message: string }> {
    return Array.isArray(this.details.issues) ? this.details.issues : [];
  }
}

/** 401 or 403: the token is missing, wrong, or of a role that may not call the route. */
export class AuthenticationError extends SpendgateError {
  override name = 'AuthenticationError';
}

export class NotFoundError extends SpendgateError {
  override name = 'NotFoundError';
}

/** 409: the reservation's state forbids the call, or an idempotency key was reused with another body. */
export class ConflictError extends SpendgateError {
  override name = 'ConflictError';
}

/** 429 `budget_exceeded`: `scope` could not hold the reservation. */
export class BudgetExceededError extends SpendgateError {
  override name = 'BudgetExceededError';
  readonly scope: RefusedScope | null;
  /** Seconds until the scope's budget period resets; null for a budget that never resets. */
  readonly retryAfter: number | null;
  constructor(init: ErrorInit) {
    super(init);
    this.scope = scopeOf(init.details);
    this.retryAfter = init.retryAfter ?? null;
  }
}

/** 429 `rate_limit_exceeded` (RPM or TPM) or `parallel_limit_exceeded` (`type` tells which). */
export class RateLimitError extends SpendgateError {
  override name = 'RateLimitError';
  readonly scope: RefusedScope | null;
  /** Seconds to wait before the same request can fit; null when the server does not know (a parallel limit). */
  readonly retryAfter: number | null;
  constructor(init: ErrorInit) {
    super(init);
    this.scope = scopeOf(init.details);
    this.retryAfter = init.retryAfter ?? null;
  }
}

/** No answer: the server could not be reached, or the connection failed mid-call, after every retry. */
export class ConnectionError extends SpendgateError {
  override name = 'ConnectionError';
}

/** No answer within the timeout, after every retry. */
export class TimeoutError extends SpendgateError {
  override name = 'TimeoutError';
}

/** 503 after every retry: the database could not be reached or was busy; nothing was written. */
export class UnavailableError extends SpendgateError {
  override name = 'UnavailableError';
}

/** The error a spendgate error answer stands for. */
export function errorFromAnswer(status: number, body: unknown, headers: Headers): SpendgateError {
  const error = typeof body === 'object' && body !== null && 'error' in body ? body.error : null;
  const { type, message, ...details } = (typeof error === 'object' && error !== null ? error : {}) as Record<string, unknown>;
  const init: ErrorInit = {
    type: typeof type === 'string' ? type : 'unexpected_response',
    message: typeof message === 'string' ? message : `spendgate answered ${status} without an error body`,
    status,
    details,
    retryAfter: retryAfterSeconds(headers),
    requestId: headers.get('x-request-id'),
  };
  switch (init.type) {
    case 'invalid_request': return new InvalidRequestError(init);
    case 'unauthorized':
    case 'forbidden': return new AuthenticationError(init);
    case 'not_found': return new NotFoundError(init);
    case 'conflict': return new ConflictError(init);
    case 'budget_exceeded': return new BudgetExceededError(init);
    case 'rate_limit_exceeded':
    case 'parallel_limit_exceeded': return new RateLimitError(init);
    case 'unavailable': return new UnavailableError(init);
    default: return new SpendgateError(init);
  }
}

export function retryAfterSeconds(headers: Headers): number | null {
  const value = headers.get('retry-after');
  if (value === null || !/^\d+$/.test(value.trim())) return null;
  return Number(value);
}

function scopeOf(details: Record<string, unknown> | undefined): RefusedScope | null {
  const scope = details?.scope;
  if (typeof scope !== 'object' || scope === null) return null;
  const { kind, id, model } = scope as Record<string, unknown>;
  if (typeof kind !== 'string' || typeof id !== 'string') return null;
  return typeof model === 'string' ? { kind, id, model } : { kind, id };
}
