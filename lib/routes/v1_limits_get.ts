import { createRoute } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses } from '../schemas.ts';
import { Limit, ScopeParams } from './limit-schemas.ts';

export const route = createRoute({
  method: 'get',
  path: '/v1/limits/{kind}/{id}',
  summary: "A scope's limit and live usage",
  description:
    'Answers for every scope that has a limit or has been named by a reservation (limit fields null where none is ' +
    'set; remaining null without a max_budget). 404 only for a scope never seen.',
  security: [{ bearer: [] }],
  middleware: [allow('service')] as const,
  request: { params: ScopeParams },
  responses: {
    200: { description: 'The limit and its usage', content: { 'application/json': { schema: Limit } } },
    ...errorResponses(400, 401, 403, 404, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { kind, id } = c.req.valid('param');
    return c.json(Limit.parse(await c.var.ledger.getLimit(kind, id)), 200);
  });
}
