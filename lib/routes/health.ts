import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';

const Health = z.object({ ok: z.boolean() }).openapi('Health');

export const route = createRoute({
  method: 'get',
  path: '/health',
  summary: 'Liveness, with the database reached',
  responses: {
    200: { description: 'The database answered', content: { 'application/json': { schema: Health } } },
    503: { description: 'The database did not answer', content: { 'application/json': { schema: Health } } },
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    await c.var.ledger.ping();
    return c.json({ ok: true }, 200);
  });
}
