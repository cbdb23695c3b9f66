import { ConfigError } from '../config.ts';
import type { PostgresOptions } from './postgres.ts';

type Env = Record<string, string | undefined>;

/**
 * postgres.js settings from SPENDGATE_POOL_SIZE and SPENDGATE_PREPARE, over the defaults of the entry point that
 * asks: a long-running server wants a pool, a serverless instance a few connections that it lets go soon, and a
 * database behind a transaction pooler (PgBouncer, Supavisor) no named prepared statements.
 */
export function postgresSettings(env: Env, defaults: Required<PostgresOptions>): Required<PostgresOptions> {
  const problems: string[] = [];
  const settings = { ...defaults };
  const size = env.SPENDGATE_POOL_SIZE?.trim();
  if (size) {
    if (/^[1-9][0-9]{0,3}$/.test(size)) settings.max = Number(size);
    else problems.push(`SPENDGATE_POOL_SIZE must be a whole number of connections from 1 to 9999, not "${size}".`);
  }
  const prepare = env.SPENDGATE_PREPARE?.trim();
  if (prepare) {
    if (prepare === 'true' || prepare === 'false') settings.prepare = prepare === 'true';
    else problems.push(`SPENDGATE_PREPARE must be "true" or "false", not "${prepare}".`);
  }
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return settings;
}
