import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Config, Role } from './config.ts';
import type { Ledger } from './ledger.ts';

/** What every handler can read from its context. */
export type AppEnv = {
  Variables: {
    ledger: Ledger;
    config: Config;
    role: Role;
  };
};

export type App = OpenAPIHono<AppEnv>;
