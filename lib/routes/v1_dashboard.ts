import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses, Money, ScopeUsage } from '../schemas.ts';
import { Limit } from './limit-schemas.ts';

const Query = z.object({
  hours: z.coerce.number().int().min(1).max(168).default(48).openapi({ description: 'hours of spend history' }),
});

const Percent = z.string().nullable().openapi({ description: 'percent of max_budget, one decimal; null without a budget', example: '42.5' });
const Utilization = { spend_percent: Percent, reserved_percent: Percent };
const ScopeRef = z.looseObject({ kind: z.string(), id: z.string() });

const Dashboard = z
  .object({
    at: z.string(),
    scope_count: z.number(),
    scopes: z.array(Limit.extend({
      ...Utilization,
      windows: z.array(ScopeUsage.omit({ kind: true, id: true }).extend(Utilization)),
    })).openapi({ description: 'The scopes with the most spend + reserved in their current period, most first' }),
    holds: z.object({
      count: z.number(),
      amount: Money,
      oldest: z.array(z.object({
        id: z.string(),
        model: z.string().nullable(),
        reserved_cost: Money,
        created_at: z.string(),
        expires_at: z.string(),
        scopes: z.array(ScopeRef),
      })),
    }).openapi({ description: 'Live holds (not past their expiry): how many, their sum, the oldest first' }),
    refusals: z.object({
      by_type: z.record(z.string(), z.number()),
      latest: z.array(z.object({
        type: z.string(),
        scope: ScopeRef.nullable(),
        created_at: z.string(),
        message: z.string().nullable(),
      })),
    }).openapi({ description: 'Refused reserves of the last 24 hours, by type, and the latest of them' }),
    spend: z.array(z.object({ hour: z.string(), cost: Money, settled: z.number() }))
      .openapi({ description: 'Settled cost per hour (by settled_at), oldest first, the current hour last' }),
    spend_total: Money.openapi({ description: 'Settled cost over those hours' }),
    events: z.array(z.object({
      event_id: z.string(),
      type: z.string(),
      scope: ScopeRef,
      period_start: z.string().nullable(),
      created_at: z.string(),
      details: z.record(z.string(), z.unknown()),
      delivered_at: z.string().nullable(),
      attempts: z.number(),
      next_attempt_at: z.string().nullable(),
      last_error: z.string().nullable(),
    })).openapi({ description: 'The latest budget events, with their webhook delivery state' }),
    undelivered_events: z.number(),
    webhook_configured: z.boolean(),
  })
  .openapi('Dashboard');

export const route = createRoute({
  method: 'get',
  path: '/v1/dashboard',
  summary: 'Everything the dashboard page shows, in one snapshot',
  description:
    'The top 25 scopes by spend with their budgets and budget windows, live holds, refusals of the last 24 hours, ' +
    'settled cost per hour, and the latest events. One SQL function call; the page at /dashboard reads it.',
  security: [{ bearer: [] }],
  middleware: [allow()] as const,
  request: { query: Query },
  responses: {
    200: { description: 'The dashboard', content: { 'application/json': { schema: Dashboard } } },
    ...errorResponses(400, 401, 403, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { hours } = c.req.valid('query');
    const data = await c.var.ledger.dashboard(hours, 25, 10);
    return c.json(Dashboard.parse({ ...data, webhook_configured: c.var.config.webhook !== null }), 200);
  });
}
