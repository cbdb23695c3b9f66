import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses } from '../schemas.ts';
import { ScopeParams } from './limit-schemas.ts';

const Deleted = z.object({ kind: z.string(), id: z.string(), deleted: z.literal(true) }).openapi('LimitDeleted');

export const route = createRoute({
  method: 'delete',
  path: '/v1/limits/{kind}/{id}',
  summary: "Remove a scope's limit",
  description: 'Removes the limit and its model limits. Spend history stays: the scope keeps its counters and ledger.',
  security: [{ bearer: [] }],
  middleware: [allow()] as const,
  request: { params: ScopeParams },
  responses: {
    200: { description: 'Removed', content: { 'application/json': { schema: Deleted } } },
    ...errorResponses(400, 401, 403, 404, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { kind, id } = c.req.valid('param');
    return c.json(Deleted.parse(await c.var.ledger.deleteLimit(kind, id)), 200);
  });
}
