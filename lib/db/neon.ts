import { Pool, type PoolClient } from '@neondatabase/serverless';
import { classifyDatabaseError, type Database, DatabaseUnavailable, hasSqlState, type MigrationSession } from '../db.ts';

export interface NeonOptions {
  /** Connections in the pool. At the edge a pool lives for one request, which makes one call: 1 is plenty. */
  max?: number;
  /** Milliseconds an unused connection stays open. */
  idleTimeoutMillis?: number;
}

/**
 * `@neondatabase/serverless`: node-postgres over a WebSocket, for runtimes that have `fetch` and `WebSocket` but no
 * TCP (Vercel Edge, Cloudflare Workers). Where a WebSocket may not outlive the request that opened it, open one of
 * these per request and close it when the answer is out.
 */
export function neonDatabase(url: string, options: NeonOptions = {}): Database {
  const pool = new Pool({
    connectionString: url,
    max: options.max ?? 1,
    idleTimeoutMillis: options.idleTimeoutMillis ?? 10_000,
    connectionTimeoutMillis: 5_000,
  });
  // A connection that fails while idle is dropped from the pool; unheard, the event would end the process.
  pool.on('error', () => {});

  /** Runs fn on one connection; a connection that failed under it is closed rather than reused. */
  const withClient = async <T>(fn: (client: Connection) => Promise<T>): Promise<T> => {
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw new DatabaseUnavailable('database unavailable (cannot connect)', { cause: error });
    }
    const connection: Connection = { client, broken: false };
    try {
      return await fn(connection);
    } finally {
      client.release(connection.broken);
    }
  };
  const run = async <Row>(connection: Connection, text: string, params?: readonly unknown[]): Promise<Row[]> => {
    try {
      return (await connection.client.query(text, params ? [...params] : undefined)).rows as Row[];
    } catch (error) {
      if (hasSqlState(error)) throw classifyDatabaseError(error);
      // No SQLSTATE: the connection failed, not the statement.
      connection.broken = true;
      throw new DatabaseUnavailable('database unavailable (connection lost)', { cause: error });
    }
  };

  return {
    query: (text, params = []) => withClient((connection) => run(connection, text, params)),
    transaction: (fn) =>
      withClient(async (connection) => {
        await run(connection, 'begin');
        try {
          const session: MigrationSession = {
            query: (text, params = []) => run(connection, text, params),
            // Without parameters node-postgres uses the simple query protocol, which runs several statements.
            script: async (script) => {
              await run(connection, script);
            },
          };
          const result = await fn(session);
          await run(connection, 'commit');
          return result;
        } catch (error) {
          if (!connection.broken) await run(connection, 'rollback').catch(() => {});
          throw error;
        }
      }),
    close: () => pool.end(),
  };
}

interface Connection {
  client: PoolClient;
  broken: boolean;
}

