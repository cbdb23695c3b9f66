import { ConfigError } from '../config.ts';
import type { PostgresOptions } from './postgres.ts';

type Env = Record<string, string | undefined>;

type Defaults = Required<Pick<PostgresOptions, 'max' | 'prepare' | 'idleTimeout'>>;

/**
 * postgres.js settings from SPENDGATE_POOL_SIZE, SPENDGATE_PREPARE, SPENDGATE_STATEMENT_TIMEOUT_MS and
 * SPENDGATE_CONNECT_TIMEOUT_MS, over the defaults of the entry point that
 * asks: a long-running server wants a pool, a serverless instance a few connections that it lets go soon, and a
 * database behind a transaction pooler (PgBouncer, Supavisor) no named prepared statements.
 */
export function postgresSettings(env: Env, defaults: Defaults): PostgresOptions {
  const problems: string[] = [];
  const settings: PostgresOptions = { ...defaults };
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
  const statementTimeout = env.SPENDGATE_STATEMENT_TIMEOUT_MS?.trim();
  if (statementTimeout) {
    if (/^[0-9]{1,8}$/.test(statementTimeout)) settings.statementTimeoutMs = Number(statementTimeout);
    else problems.push(`SPENDGATE_STATEMENT_TIMEOUT_MS must be a whole number of milliseconds (0 turns it off), not "${statementTimeout}".`);
  }
  const connectTimeout = env.SPENDGATE_CONNECT_TIMEOUT_MS?.trim();
  if (connectTimeout) {
    if (/^[1-9][0-9]{0,7}$/.test(connectTimeout)) settings.connectTimeoutMs = Number(connectTimeout);
    else problems.push(`SPENDGATE_CONNECT_TIMEOUT_MS must be a positive whole number of milliseconds, not "${connectTimeout}".`);
  }
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return settings;
}
