import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses } from '../schemas.ts';
import { Model, ModelName } from './model-schemas.ts';

export const route = createRoute({
  method: 'get',
  path: '/v1/models/{name}',
  summary: 'Read a price-table entry',
  description: 'The exact name, else the name without its provider prefix (openai/gpt-4o finds gpt-4o).',
  security: [{ bearer: [] }],
  middleware: [allow('service')] as const,
  request: { params: z.object({ name: ModelName }) },
  responses: {
    200: { description: 'The entry, prices as decimal strings', content: { 'application/json': { schema: Model } } },
    ...errorResponses(400, 401, 403, 404, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { name } = c.req.valid('param');
    return c.json(Model.parse(await c.var.ledger.getModel(name)), 200);
  });
}
