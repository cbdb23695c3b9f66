import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { ledgerError } from '../ledger.ts';
import { rateLimitHeaders } from '../rate-limit-headers.ts';
import { errorResponses, IdempotencyKey, replayedHeader } from '../schemas.ts';
import { LedgerReserved, Reserved, ReserveBody, reservePayload } from './reserve-request.ts';

export const route = createRoute({
  method: 'post',
  path: '/v1/reservations',
  summary: 'Reserve the worst-case cost of a call before making it',
  description:
    'Checks and charges every named scope (budgets and budget windows, RPM, TPM, ITPM, OTPM, parallel) all or ' +
    'nothing. The same idempotency key (body field or Idempotency-Key header) with the same body answers the first ' +
    'reservation again with 200, or the refusal it first got (for a day).',
  security: [{ bearer: [] }],
  middleware: [allow('service')] as const,
  request: {
    headers: z.object({ 'idempotency-key': IdempotencyKey.optional() }),
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
    const payload = await reservePayload(c.req.valid('json'), c.req.valid('header')['idempotency-key'], c.var.config);
    const result = await c.var.ledger.reserve(payload);
    const headers = rateLimitHeaders(result.scopes);
    const refusal = ledgerError(result);
    if (refusal) {
      // A retry of a refused key gets the refusal it first got.
      const replay: Record<string, string> = result.replayed === true ? { [replayedHeader]: 'true' } : {};
      throw new ApiError(refusal.type, refusal.message, refusal.details, { ...headers, ...refusal.headers, ...replay });
    }
    const { replayed, ...reserved } = LedgerReserved.parse(result);
    if (replayed) return c.json(reserved, 200, { ...headers, [replayedHeader]: 'true' });
    return c.json(reserved, 201, headers);
  });
}
