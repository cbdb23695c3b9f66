import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses, Money, Reservation, ReservationId } from '../schemas.ts';

const Released = Reservation.extend({ released_cost: Money }).openapi('Released');

export const route = createRoute({
  method: 'post',
  path: '/v1/reservations/{id}/release',
  summary: 'Return the hold: the call failed or was cancelled',
  description:
    'Returns the hold, refunds its TPM tokens and frees its parallel slot. Idempotent; an expired hold answers ' +
    '200 with status `expired` (it was already returned). Releasing a settled reservation is 409.',
  security: [{ bearer: [] }],
  middleware: [allow('service')] as const,
  request: { params: z.object({ id: ReservationId }) },
  responses: {
    200: { description: 'Released (or already expired)', content: { 'application/json': { schema: Released } } },
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { id } = c.req.valid('param');
    return c.json(Released.parse(await c.var.ledger.release(id)), 200);
  });
}
