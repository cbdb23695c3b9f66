import type { Context, MiddlewareHandler } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { timingSafeEqual } from 'hono/utils/buffer';
import type { AppEnv } from './app-env.ts';
import type { Config, Role } from './config.ts';
import { ApiError } from './errors.ts';

const unauthorized = (c: Context) =>
  c.json({ error: { type: 'unauthorized', message: 'Send Authorization: Bearer <token> with the token of a role that may call this route.' } }, 401);

/**
 * Bearer auth (Hono's, timing-safe). The token names the caller's role: every configured token is compared, so the
 * time taken does not tell which one matched, or how much of one.
 */
export function authenticate(tokens: Config['tokens']): MiddlewareHandler<AppEnv> {
  const roles: Array<[Role, string]> = [['admin', tokens.admin], ['service', tokens.service]];
  if (tokens.cron) roles.push(['cron', tokens.cron]);
  return bearerAuth<AppEnv>({
    verifyToken: async (token, c) => {
      let matched: Role | null = null;
      for (const [role, expected] of roles) {
        if ((await timingSafeEqual(token, expected)) && matched === null) matched = role;
      }
      if (matched) c.set('role', matched);
      return matched !== null;
    },
    noAuthenticationHeader: { message: unauthorized },
    invalidAuthenticationHeader: { message: unauthorized },
    invalidToken: { message: unauthorized },
  });
}

/** Lets only these roles through; admin may call everything. */
export function allow(...roles: Role[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const role = c.get('role');
    if (role !== 'admin' && !roles.includes(role)) {
      throw new ApiError('forbidden', `The ${role} role may not call this route; it needs ${['admin', ...roles].join(' or ')}.`);
    }
    await next();
  };
}
