// postgresSettings: the postgres.js options an entry point gets from SPENDGATE_POOL_SIZE, SPENDGATE_PREPARE,
// SPENDGATE_STATEMENT_TIMEOUT_MS and SPENDGATE_CONNECT_TIMEOUT_MS over its own defaults, and one ConfigError that
// names every bad value.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/config.ts';
import { postgresSettings } from '../../lib/db/postgres-settings.ts';

// The defaults of the long-running server and of the Supabase function (functions/local-database.ts,
// supabase/functions/spendgate/index.ts).
const server = { max: 10, prepare: true, idleTimeout: 20 };
const supabase = { max: 3, prepare: false, idleTimeout: 5 };

/** The ConfigError postgresSettings throws for env, or a failure if it throws none. */
function refusal(env: Record<string, string>): ConfigError {
  try {
    postgresSettings(env, server);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
}

describe('postgresSettings', () => {
  it('keeps the entry point defaults when nothing is set, or only blanks', () => {
    expect(postgresSettings({}, server)).toEqual(server);
    expect(postgresSettings({}, supabase)).toEqual(supabase);
    const blank = { SPENDGATE_POOL_SIZE: '', SPENDGATE_PREPARE: '  ', SPENDGATE_STATEMENT_TIMEOUT_MS: '', SPENDGATE_CONNECT_TIMEOUT_MS: ' ' };
    expect(postgresSettings(blank, supabase)).toEqual(supabase);
  });

  it('does not change the defaults object it was given', () => {
    const defaults = { ...supabase };
    postgresSettings({ SPENDGATE_POOL_SIZE: '7', SPENDGATE_PREPARE: 'true' }, defaults);
    expect(defaults).toEqual(supabase);
  });

  describe('SPENDGATE_PREPARE', () => {
    it('"true" turns named prepared statements on over a default of off, "false" off over a default of on', () => {
      expect(postgresSettings({ SPENDGATE_PREPARE: 'true' }, supabase).prepare).toBe(true);
      expect(postgresSettings({ SPENDGATE_PREPARE: 'false' }, server).prepare).toBe(false);
      expect(postgresSettings({ SPENDGATE_PREPARE: 'false' }, supabase).prepare).toBe(false);
      expect(postgresSettings({ SPENDGATE_PREPARE: ' true\n' }, supabase).prepare).toBe(true);
    });

    it.each(['yes', 'no', '0', '1', 'TRUE', 'False', 'off', 'true false'])('refuses "%s" rather than guess', (value) => {
      expect(refusal({ SPENDGATE_PREPARE: value }).message)
        .toBe(`SPENDGATE_PREPARE must be "true" or "false", not "${value}".`);
    });
  });

  describe('SPENDGATE_POOL_SIZE', () => {
    it.each([['1', 1], ['3', 3], ['10', 10], ['9999', 9999], [' 25 ', 25]])('takes "%s" as %i connections', (value, max) => {
      expect(postgresSettings({ SPENDGATE_POOL_SIZE: value }, server)).toEqual({ ...server, max });
    });

    it.each(['0', '10000', '-1', '01', '2.5', '1e3', 'ten', '0x10'])('refuses "%s" (1 to 9999)', (value) => {
      expect(refusal({ SPENDGATE_POOL_SIZE: value }).message)
        .toBe(`SPENDGATE_POOL_SIZE must be a whole number of connections from 1 to 9999, not "${value}".`);
    });
  });

  describe('SPENDGATE_STATEMENT_TIMEOUT_MS', () => {
    it.each([['0', 0], ['1', 1], ['500', 500], ['10000', 10_000], ['99999999', 99_999_999]])('takes "%s" as %i ms (0 turns it off)', (value, ms) => {
      expect(postgresSettings({ SPENDGATE_STATEMENT_TIMEOUT_MS: value }, server)).toEqual({ ...server, statementTimeoutMs: ms });
    });

    it.each(['-1', '1.5', '10s', '100000000', 'off'])('refuses "%s"', (value) => {
      expect(refusal({ SPENDGATE_STATEMENT_TIMEOUT_MS: value }).message)
        .toBe(`SPENDGATE_STATEMENT_TIMEOUT_MS must be a whole number of milliseconds (0 turns it off), not "${value}".`);
    });
  });

  describe('SPENDGATE_CONNECT_TIMEOUT_MS', () => {
    it.each([['1', 1], ['5000', 5000], ['99999999', 99_999_999]])('takes "%s" as %i ms', (value, ms) => {
      expect(postgresSettings({ SPENDGATE_CONNECT_TIMEOUT_MS: value }, server)).toEqual({ ...server, connectTimeoutMs: ms });
    });

    it.each(['0', '00', '-5', '2.5', '5s', '100000000'])('refuses "%s" (positive: 0 does not turn it off)', (value) => {
      expect(refusal({ SPENDGATE_CONNECT_TIMEOUT_MS: value }).message)
        .toBe(`SPENDGATE_CONNECT_TIMEOUT_MS must be a positive whole number of milliseconds, not "${value}".`);
    });
  });

  it('reads all four together', () => {
    const env = { SPENDGATE_POOL_SIZE: '4', SPENDGATE_PREPARE: 'false', SPENDGATE_STATEMENT_TIMEOUT_MS: '0', SPENDGATE_CONNECT_TIMEOUT_MS: '250' };
    expect(postgresSettings(env, server)).toEqual({ max: 4, prepare: false, idleTimeout: 20, statementTimeoutMs: 0, connectTimeoutMs: 250 });
  });

  it('names every bad variable in one error, one line each, so one log line shows all there is to fix', () => {
    const error = refusal({
      SPENDGATE_POOL_SIZE: '0',
      SPENDGATE_PREPARE: 'maybe',
      SPENDGATE_STATEMENT_TIMEOUT_MS: '-1',
      SPENDGATE_CONNECT_TIMEOUT_MS: '0',
    });
    expect(error.message.split('\n')).toEqual([
      'SPENDGATE_POOL_SIZE must be a whole number of connections from 1 to 9999, not "0".',
      'SPENDGATE_PREPARE must be "true" or "false", not "maybe".',
      'SPENDGATE_STATEMENT_TIMEOUT_MS must be a whole number of milliseconds (0 turns it off), not "-1".',
      'SPENDGATE_CONNECT_TIMEOUT_MS must be a positive whole number of milliseconds, not "0".',
    ]);
    // A good value next to bad ones is not reported.
    expect(refusal({ SPENDGATE_POOL_SIZE: '5', SPENDGATE_PREPARE: 'nope' }).message)
      .toBe('SPENDGATE_PREPARE must be "true" or "false", not "nope".');
  });
});
