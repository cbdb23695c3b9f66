import postgres from 'postgres';
import { classifyDatabaseError, type Database, type MigrationSession } from '../db.ts';
import { connectionSlots } from './connection-slots.ts';

export interface PostgresOptions {
  /** Connections in the pool. Serverless instances want few. */
  max?: number;
  /** Named prepared statements; turn off behind a transaction pooler (PgBouncer, Supavisor). */
  prepare?: boolean;
  /** Seconds an unused connection stays open. Serverless instances want it short: a frozen instance's connections
   * still count against the server's limit. */
  idleTimeout?: number;
  /** The server cancels a statement that runs longer (SQLSTATE 57014, answered 503, nothing written); 0 turns
   * it off. Above the SQL functions' 5 s lock_timeout, so a wait on a hot row reports as that first. */
  statementTimeoutMs?: number;
  /** How long to wait for a connection to open; then the database counts as unreachable (503, nothing sent). */
  connectTimeoutMs?: number;
}

export const defaultStatementTimeoutMs = 10_000;
export const defaultConnectTimeoutMs = 5_000;

/** The postgres.js driver, for Node, Deno and Supabase. */
export function postgresDatabase(url: string, options: PostgresOptions = {}): Database {
  const prepare = options.prepare ?? true;
  const max = options.max ?? 10;
  const statementTimeoutMs = milliseconds('statement timeout', options.statementTimeoutMs ?? defaultStatementTimeoutMs, 0);
  const connectTimeoutMs = milliseconds('connect timeout', options.connectTimeoutMs ?? defaultConnectTimeoutMs, 1);
  const sql = postgres(url, {
    max,
    prepare,
    idle_timeout: options.idleTimeout ?? 20,
    connect_timeout: connectTimeoutMs / 1000,
    // Reconnect within 0.2 s, not after postgres.js's default backoff of up to 20 s: a statement that has its slot
    // (below) waits for its connection, and there is one attempt per connection at a time.
    backoff: (retries: number) => Math.min(0.02 * retries, 0.2),
    // Sent at connection start, so it holds for every statement on the connection: no request waits on a stuck
    // database longer than this.
    connection: { statement_timeout: statementTimeoutMs },
    onnotice: () => {},
  });
  const slots = connectionSlots(max);
  const run = async <Row>(runner: postgres.Sql | postgres.TransactionSql, text: string, params: readonly unknown[]) => {
    try {
      return (await runner.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare })) as unknown as Row[];
    } catch (error) {
      throw classifyDatabaseError(error);
    }
  };
  return {
    query: (text, params = []) => slots.run(() => run(sql, text, params)),
    async transaction(fn) {
      try {
        return (await slots.run(() => sql.begin((tx) => {
          const session: MigrationSession = {
            query: (text, params = []) => run(tx, text, params),
            script: async (script) => {
              await tx.unsafe(script);
            },
          };
          return fn(session);
        }))) as Awaited<ReturnType<typeof fn>>;
      } catch (error) {
        throw classifyDatabaseError(error);
      }
    },
    close: () => sql.end({ timeout: 5 }),
  };
}

function milliseconds(name: string, value: number, least: number): number {
  if (!Number.isSafeInteger(value) || value < least) {
    throw new Error(`the ${name} must be a whole number of milliseconds, at least ${least}, not ${value}`);
  }
  return value;
}
