import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses } from '../schemas.ts';
import { sweepDue } from '../sweep.ts';

const Swept = z.object({ expired: z.number(), complete: z.boolean() }).openapi('Swept');

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
    app.openapi(route, async (c) => c.json(await sweepDue(c.var.ledger), 200));
  }
}
