import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Config, Role } from './config.ts';
import type { Ledger } from './ledger.ts';
import type { Metrics } from './metrics.ts';
import type { DeliveryReport } from './webhooks.ts';

/** What a runtime may hand the app with each request (the second argument of its fetch). */
export type AppBindings = {
  /** The request's body, already read whole by the runtime's adapter (the Node server does so for small bodies):
   * the app then takes it as it is instead of reading the Request's body stream. */
  body?: Uint8Array;
};

/** What every handler can read from its context. */
export type AppEnv = {
  Bindings: AppBindings;
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
