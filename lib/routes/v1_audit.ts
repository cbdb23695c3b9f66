import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses } from '../schemas.ts';

const AuditReport = z
  .object({
    ok: z.boolean(),
    scopes_checked: z.number(),
    mismatches: z.array(
      z.looseObject({ kind: z.string(), id: z.string(), field: z.string(), counter: z.string(), ledger: z.string() }),
    ),
  })
  .openapi('Audit');

export const route = createRoute({
  method: 'get',
  path: '/v1/audit',
  summary: 'Recompute every counter from the ledger and compare',
  description:
    "Recomputes each scope's spend (settled cost in its current period), reserved and in_flight (live holds) from " +
    'the reservations, in one snapshot, and lists every counter that differs.',
  security: [{ bearer: [] }],
  middleware: [allow()] as const,
  responses: {
    200: { description: 'The audit', content: { 'application/json': { schema: AuditReport } } },
    ...errorResponses(401, 403, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => c.json(AuditReport.parse(await c.var.ledger.audit()), 200));
}
