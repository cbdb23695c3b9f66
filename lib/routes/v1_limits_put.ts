import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses } from '../schemas.ts';
import { Limit, LimitBody, ScopeParams } from './limit-schemas.ts';

const Deleted = z.object({ kind: z.string(), id: z.string(), deleted: z.literal(true) });

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
    200: { description: 'The limit and its usage', content: { 'application/json': { schema: z.union([Limit, Deleted]) } } },
    ...errorResponses(400, 401, 403, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { kind, id } = c.req.valid('param');
    const result = await c.var.ledger.putLimit(kind, id, c.req.valid('json'));
    return c.json('deleted' in result ? Deleted.parse(result) : Limit.parse(result), 200);
  });
}
