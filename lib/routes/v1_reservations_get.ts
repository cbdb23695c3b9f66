import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses, Reservation, ReservationId } from '../schemas.ts';

export const route = createRoute({
  method: 'get',
  path: '/v1/reservations/{id}',
  summary: 'Read a reservation',
  description:
    'State (held, settled, released, expired), amounts, timestamps, the usage it was settled with and the prices ' +
    'used, so that a charge can be checked by hand. A held reservation past expires_at reads as expired.',
  security: [{ bearer: [] }],
  middleware: [allow('service')] as const,
  request: { params: z.object({ id: ReservationId }) },
  responses: {
    200: { description: 'The reservation', content: { 'application/json': { schema: Reservation } } },
    ...errorResponses(400, 401, 403, 404, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { id } = c.req.valid('param');
    return c.json(Reservation.parse(await c.var.ledger.getReservation(id)), 200);
  });
}
