import { parseDecimal } from './decimal.ts';
import type { GroupCommitOptions } from './group-commit.ts';
import { readWebhookSettings, type WebhookSettings } from './webhook-settings.ts';

export type Role = 'admin' | 'service' | 'cron';

export interface Config {
  /** Bearer token of each role; cron is optional (then only admin may sweep). */
  tokens: { admin: string; service: string; cron: string | null };
  /** Roles whose token was generated at start because none was configured (loopback only). */
  generatedTokens: Role[];
  /** The hold for a model missing from the price table (a decimal), or null to reject such requests. */
  unknownModelHold: string | null;
  /** The most any single hold may be (a decimal), or null for no cap. */
  maxHold: string | null;
  /** Which tokens TPM counts: input + output (total), input only, or output only. */
  tpmCount: TpmCount;
  /** Length of the RPM/TPM windows in seconds, when configured; the deploy step stores it in the database, which
   * every instance then reads (null: leave the database's value, 60 unless set). */
  rateWindowSeconds: number | null;
  /** Largest request body accepted, in bytes: a reserve (which carries the model request) and the price-table
   * import get their own. */
  bodyLimit: number;
  reserveBodyLimit: number;
  importBodyLimit: number;
  /** Where budget events are delivered (SPENDGATE_WEBHOOK_URL), signed with SPENDGATE_WEBHOOK_SECRET; null: not. */
  webhook: WebhookSettings | null;
  /** How reserves and settles that arrive together share transactions (SPENDGATE_BATCH_MAX,
   * SPENDGATE_BATCH_CONCURRENCY); see lib/group-commit.ts. */
  groupCommit: GroupCommitOptions;
}

export const tpmCounts = ['total', 'input', 'output'] as const;
export type TpmCount = (typeof tpmCounts)[number];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

/**
 * Reads the configuration from environment variables. Without a token for admin or service, a token is generated
 * only when `allowGeneratedTokens` (a server on a loopback address); anywhere else that is an error, because a
 * reachable server must never answer without a token check.
 */
export function loadConfig(env: Env, options: { allowGeneratedTokens: boolean }): Config {
  const problems: string[] = [];
  const generatedTokens: Role[] = [];
  const token = (name: string, role: Role): string => {
    const value = env[name]?.trim();
    if (value) {
      if (value.length < 16) problems.push(`${name} must be at least 16 characters long.`);
      return value;
    }
    if (!options.allowGeneratedTokens) {
      problems.push(`${name} is not set; it is required unless the server listens on a loopback address only.`);
      return '';
    }
    generatedTokens.push(role);
    return randomToken(role);
  };
  const admin = token('SPENDGATE_ADMIN_TOKEN', 'admin');
  const service = token('SPENDGATE_SERVICE_TOKEN', 'service');
  const cron = env.CRON_SECRET?.trim() || null;
  if (admin && admin === service) problems.push('SPENDGATE_ADMIN_TOKEN and SPENDGATE_SERVICE_TOKEN must differ.');

  const holdSetting = env.SPENDGATE_UNKNOWN_MODEL_HOLD?.trim() || '1.00';
  let unknownModelHold: string | null = null;
  if (holdSetting !== 'reject') {
    const parsed = parseDecimal(holdSetting);
    if (!parsed.ok || parsed.value.startsWith('-')) {
      problems.push(`SPENDGATE_UNKNOWN_MODEL_HOLD must be a non-negative decimal or "reject", not "${holdSetting}".`);
    } else {
      unknownModelHold = parsed.value;
    }
  }
  let maxHold: string | null = null;
  const maxHoldSetting = env.SPENDGATE_MAX_HOLD?.trim();
  if (maxHoldSetting) {
    const parsed = parseDecimal(maxHoldSetting);
    if (!parsed.ok || parsed.value.startsWith('-') || /^0(\.0*)?$/.test(parsed.value)) {
      problems.push(`SPENDGATE_MAX_HOLD must be a positive decimal, not "${maxHoldSetting}".`);
    } else {
      maxHold = parsed.value;
    }
  }
  const tpmSetting = env.SPENDGATE_TPM_COUNT?.trim() || 'total';
  const tpmCount = tpmCounts.find((count) => count === tpmSetting);
  if (!tpmCount) problems.push(`SPENDGATE_TPM_COUNT must be total, input or output, not "${tpmSetting}".`);
  let rateWindowSeconds: number | null = null;
  try {
    rateWindowSeconds = databaseSettings(env).rateWindowSeconds;
  } catch (error) {
    problems.push((error as ConfigError).message);
  }
  const webhook = readWebhookSettings(env);
  problems.push(...webhook.problems);
  const wholeNumber = (name: string, fallback: number, most: number): number => {
    const setting = env[name]?.trim();
    if (!setting) return fallback;
    const value = /^\d{1,4}$/.test(setting) ? Number(setting) : NaN;
    if (value >= 1 && value <= most) return value;
    problems.push(`${name} must be a whole number from 1 to ${most}, not "${setting}".`);
    return fallback;
  };
  const groupCommit = {
    maxBatch: wholeNumber('SPENDGATE_BATCH_MAX', 32, 1000),
    maxInFlight: wholeNumber('SPENDGATE_BATCH_CONCURRENCY', 1, 1000),
  };
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return {
    tokens: { admin, service, cron },
    generatedTokens,
    unknownModelHold,
    maxHold,
    tpmCount: tpmCount ?? 'total',
    rateWindowSeconds,
    bodyLimit: 1024 * 1024,
    reserveBodyLimit: 32 * 1024 * 1024,
    importBodyLimit: 16 * 1024 * 1024,
    webhook: webhook.settings,
    groupCommit,
  };
}

function randomToken(role: Role): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `sg_${role}_` + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Settings every instance must agree on: the deploy step (migrate) stores them in the database. */
export interface DatabaseSettings {
  rateWindowSeconds: number | null;
}

export function databaseSettings(env: Env): DatabaseSettings {
  const setting = env.SPENDGATE_RATE_WINDOW_SECONDS?.trim();
  if (!setting) return { rateWindowSeconds: null };
  const seconds = /^\d{1,4}$/.test(setting) ? Number(setting) : NaN;
  if (!(seconds >= 1 && seconds <= 3600)) {
    throw new ConfigError(`SPENDGATE_RATE_WINDOW_SECONDS must be a whole number of seconds from 1 to 3600, not "${setting}".`);
  }
  return { rateWindowSeconds: seconds };
}
