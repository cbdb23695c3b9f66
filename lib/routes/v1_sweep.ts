import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses } from '../schemas.ts';
import { sweepDue } from '../sweep.ts';

const Webhooks = z
  .object({
    delivered: z.number().openapi({ description: 'events the receiver acknowledged with a 2xx' }),
    failed: z.number().openapi({ description: 'attempts that failed; each is retried later with backoff' }),
    complete: z.boolean().openapi({ description: 'false when more events were due than one call delivers' }),
  })
  .nullable()
  .openapi('WebhookDeliveries', { description: 'null when no SPENDGATE_WEBHOOK_URL is configured' });

const Swept = z.object({ expired: z.number(), complete: z.boolean(), webhooks: Webhooks }).openapi('Swept');

const definition = (method: 'get' | 'post') =>
  createRoute({
    method,
    path: '/v1/sweep',
    summary: 'Expire every held reservation past its expires_at',
    description:
      'Returns each stale hold to its scopes, in batches of 100 (one transaction each, then a pause as long as it took, ' +
      'so that a large sweep keeps its connection busy half the time at most). Safe to run from many ' +
      'places at once: a batch skips the rows another sweeper holds. `complete` is false when more than 50 000 were ' +
      'due and a further call should follow. Then delivers the budget events due to SPENDGATE_WEBHOOK_URL (see ' +
      '`webhooks`). GET is for Vercel Cron.',
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
      const swept = await sweepDue(c.var.ledger);
      // After the sweep: the cron that expires holds is also what delivers the outbox, so no other schedule is needed.
      const webhooks = await c.var.deliverEvents();
      return c.json({ ...swept, webhooks }, 200);
    });
  }
}
