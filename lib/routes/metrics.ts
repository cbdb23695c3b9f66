import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { prometheusContentType } from '../prometheus.ts';
import { errorResponses } from '../schemas.ts';

export const route = createRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Metrics in the Prometheus text format (admin)',
  description:
    "This process's counters and latency histograms: reservations by outcome and refusal reason, settled cost, " +
    'reserve and settle latency, sweeps and expired holds, database errors. Scrape every instance. Admin only: the ' +
    'numbers tell how much traffic each outcome gets, which is not for every caller to see.',
  security: [{ bearer: [] }],
  middleware: [allow()] as const,
  responses: {
    200: { description: 'The metrics', content: { [prometheusContentType]: { schema: z.string() } } },
    ...errorResponses(401, 403),
  },
});

export function register(app: App) {
  app.openapi(route, (c) => c.text(c.var.metrics.registry.render(), 200, { 'content-type': prometheusContentType }));
}
