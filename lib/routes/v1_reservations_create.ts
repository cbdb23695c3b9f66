import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { bodyHash } from '../hash.ts';
import { ledgerError } from '../ledger.ts';
import { rateLimitHeaders } from '../rate-limit-headers.ts';
import { estimateRequest } from '../request-estimate.ts';
import { Amount, errorResponses, replayedHeader, Reservation, ScopeUsage, Scopes, TokenCount, TtlSeconds } from '../schemas.ts';

const OutputTokens = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).nullable().optional();

// Unknown fields are refused, not ignored: a misspelt idempotency_key would otherwise hold twice on a retry.
const ReserveBody = z
  .strictObject({
    scopes: Scopes,
    model: z.string().min(1).max(256).optional().openapi({ example: 'gpt-4o' }),
    request: z
      .looseObject({
        max_tokens: OutputTokens,
        max_completion_tokens: OutputTokens,
        max_output_tokens: OutputTokens,
        n: z.number().int().min(1).max(128).nullable().optional(),
        best_of: z.number().int().min(1).max(128).nullable().optional(),
      })
      .optional()
      .openapi({
        description: 'The OpenAI-shaped body about to be sent; read to estimate, never stored.',
        example: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 256 },
      }),
    estimate: z
      .strictObject({
        cost: Amount.optional(),
        tokens: TokenCount.optional(),
        seconds: Amount.optional().openapi({ description: 'Length of the audio, for models billed by the second (transcription)' }),
      })
      .optional(),
    ttl_seconds: TtlSeconds.default(600),
    idempotency_key: z.string().min(1).max(256).optional(),
  })
  .superRefine((body, ctx) => {
    if (body.model === undefined && body.estimate?.cost === undefined) {
      ctx.addIssue({ code: 'custom', path: ['model'], message: 'give model (priced from the price table) or estimate.cost' });
    }
  })
  .openapi('ReserveRequest');

const Reserved = Reservation.extend({ scopes: z.array(ScopeUsage) }).openapi('Reserved');
const LedgerReserved = Reserved.extend({ replayed: z.boolean().optional() });

export const route = createRoute({
  method: 'post',
  path: '/v1/reservations',
  summary: 'Reserve the worst-case cost of a call before making it',
  description:
    'Checks and charges every named scope (budget, RPM, TPM, parallel) all or nothing. The same idempotency key ' +
    '(body field or Idempotency-Key header) with the same body answers the first reservation again with 200.',
  security: [{ bearer: [] }],
  middleware: [allow('service')] as const,
  request: {
    headers: z.object({ 'idempotency-key': z.string().min(1).max(256).optional() }),
    body: { content: { 'application/json': { schema: ReserveBody } }, required: true },
  },
  responses: {
    201: { description: 'Held', content: { 'application/json': { schema: Reserved } } },
    200: { description: `The reservation first made with this idempotency key (header ${replayedHeader}: true)`, content: { 'application/json': { schema: Reserved } } },
    ...errorResponses(400, 401, 403, 409, 429, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const body = c.req.valid('json');
    const headerKey = c.req.valid('header')['idempotency-key'];
    if (headerKey !== undefined && body.idempotency_key !== undefined && headerKey !== body.idempotency_key) {
      throw ApiError.invalid([{ path: 'idempotency_key', message: 'differs from the Idempotency-Key header; send one' }]);
    }
    const idempotencyKey = body.idempotency_key ?? headerKey ?? null;
    const { idempotency_key: _, ...hashed } = body;
    const result = await c.var.ledger.reserve({
      scopes: body.scopes,
      model: body.model ?? null,
      request_estimate: body.model !== undefined || body.request !== undefined ? estimateRequest(body.request ?? {}) : null,
      caller_estimate: body.estimate ?? null,
      ttl_seconds: body.ttl_seconds,
      idempotency_key: idempotencyKey,
      request_hash: await bodyHash(hashed),
      fallback_hold: c.var.config.unknownModelHold,
      max_hold: c.var.config.maxHold,
    });
    const headers = rateLimitHeaders(result.scopes);
    const refusal = ledgerError(result);
    if (refusal) throw new ApiError(refusal.type, refusal.message, refusal.details, { ...headers, ...refusal.headers });
    const { replayed, ...reserved } = LedgerReserved.parse(result);
    if (replayed) return c.json(reserved, 200, { ...headers, [replayedHeader]: 'true' });
    return c.json(reserved, 201, headers);
  });
}
