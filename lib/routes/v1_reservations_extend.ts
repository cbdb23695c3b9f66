import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses, Reservation, ReservationId, TtlSeconds } from '../schemas.ts';

const ExtendBody = z.strictObject({ ttl_seconds: TtlSeconds.default(600) }).openapi('ExtendRequest');

export const route = createRoute({
  method: 'post',
  path: '/v1/reservations/{id}/extend',
  summary: 'Keep a held reservation alive (long streams)',
  description: 'Sets expires_at to now + ttl_seconds (1–86400, default 600). 409 unless the reservation is held.',
  security: [{ bearer: [] }],
  middleware: [allow('service')] as const,
  request: {
    params: z.object({ id: ReservationId }),
    body: { content: { 'application/json': { schema: ExtendBody } } },
  },
  responses: {
    200: { description: 'Extended', content: { 'application/json': { schema: Reservation } } },
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { id } = c.req.valid('param');
    // The body is optional, and without one the validator hands over {} unparsed: parse it for the default.
    const { ttl_seconds } = ExtendBody.parse(c.req.valid('json'));
    return c.json(Reservation.parse(await c.var.ledger.extend(id, ttl_seconds)), 200);
  });
}
