/**
 * What spendgate needs of a database. Every state change is one SQL function call, so a driver only has to run
 * one statement with parameters; the migration runner alone needs a transaction and multi-statement scripts.
 */
export interface Queryable {
  query<Row = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<Row[]>;
}

export interface MigrationSession extends Queryable {
  /** Runs a script of several statements (simple query protocol, no parameters). */
  script(sql: string): Promise<void>;
}

export interface Database extends Queryable {
  transaction<T>(fn: (tx: MigrationSession) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The database cannot answer now (down, unreachable, overloaded, or a lock or statement timeout fired). Nothing
 * was committed by the statement that failed: the caller may retry. */
export class DatabaseUnavailable extends Error {
  override readonly name = 'DatabaseUnavailable';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

// SQLSTATEs after which a retry may succeed, and the drivers' own codes for a connection that failed.
const retryableStates = new Set([
  '08000', '08001', '08003', '08004', '08006', // connection exceptions
  '53300', // too many connections
  '55P03', // lock_not_available: lock_timeout fired on a hot row
  '57014', // query_canceled: statement_timeout
  '57P01', '57P02', '57P03', // the server is shutting down or starting
  '40001', '40P01', // serialization failure, deadlock (retried by the client, never partially applied)
]);
const connectionCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'EHOSTUNREACH',
  'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED',
]);

/** Wraps a driver error as DatabaseUnavailable when retrying could help; returns any other error unchanged. */
export function classifyDatabaseError(error: unknown): unknown {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
  if (retryableStates.has(code) || connectionCodes.has(code)) {
    return new DatabaseUnavailable(`database unavailable (${code})`, { cause: error });
  }
  return error;
}
