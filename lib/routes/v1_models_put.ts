import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses } from '../schemas.ts';
import { Model, ModelEntry, ModelName } from './model-schemas.ts';

export const route = createRoute({
  method: 'put',
  path: '/v1/models/{name}',
  summary: 'Add or replace a price-table entry',
  description: "The body is one entry of LiteLLM's price file. Holds already made keep the prices they were made with.",
  security: [{ bearer: [] }],
  middleware: [allow()] as const,
  request: {
    params: z.object({ name: ModelName }),
    body: { content: { 'application/json': { schema: ModelEntry } }, required: true },
  },
  responses: {
    200: { description: 'The entry as stored, prices as decimal strings', content: { 'application/json': { schema: Model } } },
    ...errorResponses(400, 401, 403, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { name } = c.req.valid('param');
    return c.json(Model.parse(await c.var.ledger.putModel(name, c.req.valid('json'))), 200);
  });
}
