import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Config, Role } from './config.ts';
import type { Ledger } from './ledger.ts';
import type { Metrics } from './metrics.ts';
import type { DeliveryReport } from './webhooks.ts';

/** What every handler can read from its context. */
export type AppEnv = {
  Variables: {
    ledger: Ledger;
    config: Config;
    role: Role;
    metrics: Metrics;
    /** Delivers the webhook events that are due (null when no webhook is configured). */
    deliverEvents: () => Promise<DeliveryReport | null>;
  };
};

export type App = OpenAPIHono<AppEnv>;
