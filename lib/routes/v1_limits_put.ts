import { createRoute } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses } from '../schemas.ts';
import { Limit, LimitBody, ScopeParams } from './limit-schemas.ts';

export const route = createRoute({
  method: 'put',
  path: '/v1/limits/{kind}/{id}',
  summary: "Set a scope's limits",
  description:
    'Every field is optional: an absent field stays as it was, null removes it. Arming a budget_duration starts a ' +
    'clean period now; changing it keeps the current period start. Answers the limit with its live usage.',
  security: [{ bearer: [] }],
  middleware: [allow()] as const,
  request: {
    params: ScopeParams,
    body: { content: { 'application/json': { schema: LimitBody } }, required: true },
  },
  responses: {
    200: { description: 'The limit and its usage', content: { 'application/json': { schema: Limit } } },
    ...errorResponses(400, 401, 403, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { kind, id } = c.req.valid('param');
    return c.json(Limit.parse(await c.var.ledger.putLimit(kind, id, c.req.valid('json'))), 200);
  });
}
