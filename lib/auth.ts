import type { Context, MiddlewareHandler } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import type { AppEnv } from './app-env.ts';
import type { Config, Role } from './config.ts';
import { equalInConstantTime } from './constant-time.ts';
import { ApiError } from './errors.ts';
import { sha256 } from './hash.ts';

const unauthorized = (c: Context) =>
  c.json({ error: { type: 'unauthorized', message: 'Send Authorization: Bearer <token> with the token of a role that may call this route.' } }, 401);

/**
 * Bearer auth (Hono's), timing-safe: the token presented and every configured token are compared as SHA-256
 * digests, all of them and each byte of each, so the time taken does not tell which token matched, or how much of
 * one (nor how long the tokens are). The configured tokens' digests are made once, here, so a request costs one
 * digest: Hono's timingSafeEqual digested both sides of every comparison, four or six digests a request, which was
 * a fifth of the CPU the app spent on a reserve.
 */
export function authenticate(tokens: Config['tokens']): MiddlewareHandler<AppEnv> {
  const roles: Array<[Role, string]> = [['admin', tokens.admin], ['service', tokens.service]];
  if (tokens.cron) roles.push(['cron', tokens.cron]);
  const digests = Promise.all(roles.map(async ([role, token]) => ({ role, digest: await sha256(token) })));
  return bearerAuth<AppEnv>({
    verifyToken: async (token, c) => {
      const presented = await sha256(token);
      let matched: Role | null = null;
      for (const { role, digest } of await digests) {
        if (equalInConstantTime(presented, digest) && matched === null) matched = role;
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
