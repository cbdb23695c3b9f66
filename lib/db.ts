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

/** The database cannot answer now (down, unreachable, overloaded, or a lock or statement timeout fired). Mostly
 * nothing was written: the statement was never sent, or the server rolled it back. But when the connection was lost
 * after the statement was sent (`outcomeUnknown`), it may have committed before the answer was lost; the caller must
 * retry with the same idempotency key (a repeated reserve, settle or release is applied once). */
export class DatabaseUnavailable extends Error {
  override readonly name = 'DatabaseUnavailable';
  /** The connection was lost under a statement already sent: it may have committed. */
  readonly outcomeUnknown: boolean;
  /** No connection could be made: the statement was never sent. */
  readonly unreachable: boolean;
  constructor(message: string, options?: { cause?: unknown; outcomeUnknown?: boolean; unreachable?: boolean }) {
    super(message, options);
    this.outcomeUnknown = options?.outcomeUnknown ?? false;
    this.unreachable = options?.unreachable ?? false;
  }
}

// SQLSTATEs of a connection that could not be made, so the statement was never sent.
const notConnectedStates = new Set([
  '08001', '08004', // could not connect; the server rejected the connection
  '53300', // too many connections
  '57P03', // cannot_connect_now: the server is starting up or shutting down
]);
// SQLSTATEs after which a retry may succeed and the statement was rolled back.
const rolledBackStates = new Set([
  '55P03', // lock_not_available: lock_timeout fired on a hot row
  '57014', // query_canceled: statement_timeout
  '40001', '40P01', // serialization failure, deadlock (retried by the client, never partially applied)
]);
// The connection ended under a statement already sent: the server may have committed it just before.
const lostConnectionStates = new Set([
  '08000', '08003', '08006', // connection exceptions
  '57P01', '57P02', // the server is shutting down (admin shutdown, crash of another backend)
]);
// The drivers' own codes for a connection that could not be made: nothing was sent.
const notConnectedCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'CONNECT_TIMEOUT', 'CONNECTION_ENDED']);
// ... and for a connection lost while in use.
const lostConnectionCodes = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'CONNECTION_CLOSED', 'CONNECTION_DESTROYED']);

/** Wraps a driver error as DatabaseUnavailable when retrying could help; returns any other error unchanged. */
export function classifyDatabaseError(error: unknown): unknown {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
  if (notConnectedStates.has(code) || notConnectedCodes.has(code)) {
    return new DatabaseUnavailable(`database unreachable (${code})`, { cause: error, unreachable: true });
  }
  if (rolledBackStates.has(code)) return new DatabaseUnavailable(`database busy (${code})`, { cause: error });
  if (lostConnectionStates.has(code) || lostConnectionCodes.has(code)) {
    return new DatabaseUnavailable(`database connection lost (${code})`, { cause: error, outcomeUnknown: true });
  }
  return error;
}

/** Whether the error is the server's answer to a statement (it carries a SQLSTATE): the statement failed, and a
 * statement sent alone, in a transaction of its own, was rolled back. */
export function hasSqlState(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' && /^[0-9A-Z]{5}$/.test(error.code);
}
