import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses } from '../schemas.ts';

const Swept = z.object({ expired: z.number(), complete: z.boolean() }).openapi('Swept');

// Each batch is one transaction; a call stops after this many so that a cron invocation ends in bounded time.
const batchSize = 1000;
const maxBatches = 50;

const definition = (method: 'get' | 'post') =>
  createRoute({
    method,
    path: '/v1/sweep',
    summary: 'Expire every held reservation past its expires_at',
    description:
      'Returns each stale hold to its scopes, in batches of 1000 (one transaction each). Safe to run from many ' +
      'places at once: a batch skips the rows another sweeper holds. `complete` is false when more than 50 000 were ' +
      'due and a further call should follow. GET is for Vercel Cron.',
    security: [{ bearer: [] }],
    middleware: [allow('cron')] as const,
    responses: {
      200: { description: 'How many holds expired', content: { 'application/json': { schema: Swept } } },
      ...errorResponses(401, 403, 503),
    },
  });

export const routes = [definition('post'), definition('get')] as const;

export function register(app: App) {
  for (const route of routes) {
    app.openapi(route, async (c) => {
      let expired = 0;
      for (let batch = 0; batch < maxBatches; batch++) {
        const count = await c.var.ledger.sweepBatch(batchSize);
        expired += count;
        if (count < batchSize) return c.json({ expired, complete: true }, 200);
      }
      return c.json({ expired, complete: false }, 200);
    });
  }
}
