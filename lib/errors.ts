import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/** Every error spendgate answers with, and its status (shared/API.md). */
export const errorStatus = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  budget_exceeded: 429,
  rate_limit_exceeded: 429,
  parallel_limit_exceeded: 429,
  internal: 500,
  unavailable: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorType = keyof typeof errorStatus;

export function isErrorType(value: string): value is ErrorType {
  return Object.hasOwn(errorStatus, value);
}

export interface FieldIssue {
  /** Dotted path of the field in the body, path or query ("scopes.team", "request.max_tokens"). */
  path: string;
  message: string;
}

/** An error that becomes `{"error": {"type", "message", ...details}}` with its status. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly type: ErrorType;
  readonly details: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(type: ErrorType, message: string, details: Record<string, unknown> = {},
              headers: Record<string, string> = {}) {
    super(message);
    this.type = type;
    this.details = details;
    this.headers = headers;
  }

  static invalid(issues: FieldIssue[]): ApiError {
    const summary = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
    return new ApiError('invalid_request', `Invalid request: ${summary}`, { issues });
  }
}

export function errorResponse(c: Context, error: ApiError): Response {
  for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
  return c.json({ error: { type: error.type, message: error.message, ...error.details } }, errorStatus[error.type]);
}
