import { z } from '@hono/zod-openapi';
import { decimalFromNumber, parseDecimal } from './decimal.ts';

/** A non-negative amount of US dollars: a decimal string or a JSON number, normalized to exact decimal text. */
export const Amount = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const parsed = typeof value === 'number' ? decimalFromNumber(value) : parseDecimal(value);
    if (!parsed.ok) {
      ctx.addIssue({ code: 'custom', message: `${parsed.message}; give a decimal such as "0.25"` });
      return z.NEVER;
    }
    if (parsed.value.startsWith('-')) {
      ctx.addIssue({ code: 'custom', message: 'must not be negative' });
      return z.NEVER;
    }
    return parsed.value;
  })
  .openapi({ type: 'string', example: '0.25', description: 'US dollars, a decimal string (a JSON number is accepted and read exactly)' });

/** Set on an answer that repeats an earlier one (same idempotency key, or the same settle again), as Stripe does. */
export const replayedHeader = 'idempotent-replayed';

/** Money in responses: always a decimal string. */
export const Money = z.string().openapi({ example: '0.409600' });

export const ScopeKind = z
  .string()
  .regex(/^[a-z_]{1,32}$/, 'a scope kind is 1 to 32 lowercase letters or underscores')
  .openapi({ example: 'team' });
/** Text the database can store: Postgres text and jsonb hold no U+0000, and UTF-8 has no unpaired surrogate. */
export function storableText(text: string): boolean {
  return !/\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}
export const unstorableText = 'must not contain U+0000 or an unpaired surrogate';

export const ScopeId = z
  .string()
  .min(1, 'a scope id is 1 to 256 characters')
  .max(256, 'a scope id is 1 to 256 characters')
  .refine(storableText, unstorableText);

/** An idempotency key (body field or Idempotency-Key header). */
export const IdempotencyKey = z.string().min(1).max(256).refine(storableText, unstorableText);

/** Most scopes one reservation may name: a bound on the rows one call locks. */
export const maxScopesPerRequest = 64;

export interface ScopeRef {
  kind: string;
  id: string;
}

/** `{"key": "sk-12", "tag": ["paid", "batch"]}` → distinct scopes, sorted. */
export const Scopes = z
  .record(ScopeKind, z.union([ScopeId, z.array(ScopeId).min(1, 'give at least one id')]))
  .transform((record, ctx): ScopeRef[] => {
    const seen = new Map<string, ScopeRef>();
    for (const [kind, ids] of Object.entries(record)) {
      for (const id of Array.isArray(ids) ? ids : [ids]) seen.set(JSON.stringify([kind, id]), { kind, id });
    }
    if (seen.size === 0) {
      ctx.addIssue({ code: 'custom', message: 'name at least one scope, e.g. {"key": "sk-12"}' });
      return z.NEVER;
    }
    if (seen.size > maxScopesPerRequest) {
      ctx.addIssue({ code: 'custom', message: `at most ${maxScopesPerRequest} scopes per request` });
      return z.NEVER;
    }
    return [...seen.values()].sort((a, b) => (a.kind === b.kind ? cmp(a.id, b.id) : cmp(a.kind, b.kind)));
  })
  .openapi({ type: 'object', example: { key: 'sk-12', team: 't-1' } });

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export const TokenCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
export const TtlSeconds = z.number().int().min(1).max(86400);

export const ReservationId = z.uuid('a reservation id is a UUID').openapi({
  param: { name: 'id', in: 'path' },
  example: '0b6f6c1e-3f0e-4a53-9d7a-6a0c8a1f2b3c',
});

export const ErrorBody = z
  .object({
    error: z.looseObject({
      type: z.string().openapi({ example: 'invalid_request' }),
      message: z.string(),
    }),
  })
  .openapi('Error');

export const errorResponses = (...statuses: Array<400 | 401 | 403 | 404 | 409 | 429 | 503>) =>
  Object.fromEntries(
    statuses.map((status) => [status, { description: errorDescriptions[status], content: { 'application/json': { schema: ErrorBody } } }]),
  );

const errorDescriptions = {
  400: 'invalid_request: the body, path or query failed validation; `issues` lists each field and problem',
  401: 'unauthorized: missing or wrong bearer token',
  403: "forbidden: the token's role may not call this route",
  404: 'not_found',
  409: 'conflict: the state forbids the call, or an idempotency key was reused with a different body',
  429: 'budget_exceeded, rate_limit_exceeded or parallel_limit_exceeded; Retry-After when known',
  503: 'unavailable: the database cannot be reached; nothing was written',
};

export const ScopeUsage = z
  .looseObject({
    kind: z.string(),
    id: z.string(),
    max_budget: Money.nullable(),
    soft_budget: Money.nullable(),
    budget_duration: z.string().nullable(),
    budget_align: z.enum(['rolling', 'anchor', 'calendar']).nullable(),
    budget_anchor: z.string().nullable(),
    admission: z.enum(['strict', 'fit']),
    rpm: z.number().nullable(),
    tpm: z.number().nullable(),
    itpm: z.number().nullable(),
    otpm: z.number().nullable(),
    max_parallel: z.number().nullable(),
    spend: Money,
    reserved: Money,
    remaining: Money.nullable(),
    period_start: z.string().nullable(),
    resets_at: z.string().nullable(),
    requests_in_window: z.number(),
    tokens_in_window: z.number(),
    input_tokens_in_window: z.number(),
    output_tokens_in_window: z.number(),
    in_flight: z.number(),
    requests_remaining: z.number().nullable(),
    tokens_remaining: z.number().nullable(),
    input_tokens_remaining: z.number().nullable(),
    output_tokens_remaining: z.number().nullable(),
    requests_reset_seconds: z.number(),
    tokens_reset_seconds: z.number(),
  })
  .openapi('ScopeUsage');

export const Reservation = z
  .looseObject({
    id: z.string(),
    status: z.enum(['held', 'settled', 'released', 'expired']),
    model: z.string().nullable(),
    reserved_cost: Money,
    reserved_tokens: z.number(),
    reserved_input_tokens: z.number(),
    reserved_output_tokens: z.number(),
    actual_cost: Money.nullable(),
    actual_tokens: z.number().nullable(),
    actual_input_tokens: z.number().nullable(),
    actual_output_tokens: z.number().nullable(),
    cost_source: z.enum(['caller', 'usage', 'hold']).nullable(),
    estimate: z.looseObject({
      input_tokens: z.number(),
      output_tokens: z.number(),
      source: z.enum(['request', 'caller', 'fallback']),
    }),
    idempotency_key: z.string().nullable(),
    created_at: z.string(),
    expires_at: z.string(),
    settled_at: z.string().nullable(),
    released_at: z.string().nullable(),
    expired_at: z.string().nullable(),
    scopes: z.array(z.looseObject({ kind: z.string(), id: z.string() })),
    price: z.record(z.string(), z.unknown()).nullable(),
  })
  .openapi('Reservation');
