import postgres from 'postgres';
import { classifyDatabaseError, type Database, type MigrationSession } from '../db.ts';

export interface PostgresOptions {
  /** Connections in the pool. Serverless instances want few. */
  max?: number;
  /** Named prepared statements; turn off behind a transaction pooler (PgBouncer, Supavisor). */
  prepare?: boolean;
  /** Seconds an unused connection stays open. Serverless instances want it short: a frozen instance's connections
   * still count against the server's limit. */
  idleTimeout?: number;
}

/** The postgres.js driver, for Node, Deno and Supabase. */
export function postgresDatabase(url: string, options: PostgresOptions = {}): Database {
  const prepare = options.prepare ?? true;
  const sql = postgres(url, {
    max: options.max ?? 10,
    prepare,
    idle_timeout: options.idleTimeout ?? 20,
    connect_timeout: 5,
    onnotice: () => {},
  });
  const run = async <Row>(runner: postgres.Sql | postgres.TransactionSql, text: string, params: readonly unknown[]) => {
    try {
      return (await runner.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare })) as unknown as Row[];
    } catch (error) {
      throw classifyDatabaseError(error);
    }
  };
  return {
    query: (text, params = []) => run(sql, text, params),
    async transaction(fn) {
      try {
        return (await sql.begin((tx) => {
          const session: MigrationSession = {
            query: (text, params = []) => run(tx, text, params),
            script: async (script) => {
              await tx.unsafe(script);
            },
          };
          return fn(session);
        })) as Awaited<ReturnType<typeof fn>>;
      } catch (error) {
        throw classifyDatabaseError(error);
      }
    },
    close: () => sql.end({ timeout: 5 }),
  };
}
