import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Config, Role } from './config.ts';
import type { Ledger } from './ledger.ts';
import type { Metrics } from './metrics.ts';

/** What every handler can read from its context. */
export type AppEnv = {
  Variables: {
    ledger: Ledger;
    config: Config;
    role: Role;
    metrics: Metrics;
  };
};

export type App = OpenAPIHono<AppEnv>;
