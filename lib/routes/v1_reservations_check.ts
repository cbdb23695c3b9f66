import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { ledgerError } from '../ledger.ts';
import { rateLimitHeaders } from '../rate-limit-headers.ts';
import { errorResponses, IdempotencyKey, Reservation, ScopeUsage } from '../schemas.ts';
import { ReserveBody, reservePayload } from './reserve-request.ts';

// What a reserve would hold; a reservation's identity and lifetime do not exist yet. A plain (stripping) object:
// Reservation is loose, and the rolled-back reserve's id, status and expiry must not pass through.
const Admitted = z
  .object({
    ...Reservation.pick({
      reserved_cost: true, reserved_tokens: true, reserved_input_tokens: true, reserved_output_tokens: true, estimate: true,
    }).shape,
    admitted: z.literal(true),
    scopes: z.array(ScopeUsage),
  })
  .openapi('ReserveCheck');

export const route = createRoute({
  method: 'post',
  path: '/v1/reservations/check',
  summary: 'What a reserve with this body would do, with nothing written',
  description:
    'Runs the reserve and rolls it back: the same admission, the same hold, or the same 429 with its headers and ' +
    'details. Nothing is held or counted, and an idempotency key is ignored (the check answers as for a new one).',
  security: [{ bearer: [] }],
  middleware: [allow('service')] as const,
  request: {
    headers: z.object({ 'idempotency-key': IdempotencyKey.optional() }),
    body: { content: { 'application/json': { schema: ReserveBody } }, required: true },
  },
  responses: {
    200: { description: 'A reserve would be admitted with this hold', content: { 'application/json': { schema: Admitted } } },
    ...errorResponses(400, 401, 403, 429, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const payload = await reservePayload(c.req.valid('json'), c.req.valid('header')['idempotency-key'], c.var.config);
    const result = await c.var.ledger.checkReserve(payload);
    const headers = rateLimitHeaders(result.scopes);
    const refusal = ledgerError(result);
    if (refusal) throw new ApiError(refusal.type, refusal.message, refusal.details, { ...headers, ...refusal.headers });
    return c.json(Admitted.parse({ ...result, admitted: true }), 200, headers);
  });
}
