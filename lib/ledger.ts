import type { Clock } from './clock.ts';
import type { TpmCount } from './config.ts';
import type { Queryable } from './db.ts';
import { ApiError, isErrorType } from './errors.ts';
import { groupCommit, type GroupCommitObserver, type GroupCommitOptions } from './group-commit.ts';
import type { NormalizedUsage } from './provider-usage.ts';
import type { RequestEstimate } from './request-estimate.ts';
import type { ScopeRef } from './schemas.ts';

type Json = Record<string, unknown>;

export interface ReservePayload {
  scopes: ScopeRef[];
  model: string | null;
  request_estimate: RequestEstimate | null;
  caller_estimate: { cost?: string; tokens?: number; seconds?: string } | null;
  ttl_seconds: number;
  idempotency_key: string | null;
  request_hash: string;
  fallback_hold: string | null;
  max_hold: string | null;
  tpm_count: TpmCount;
}

export interface SettlePayload {
  cost?: string;
  usage?: NormalizedUsage;
  images?: number;
  /** Input tokens that rate limits count (cache reads excluded) and output tokens, when usage was given. */
  actual_input_tokens?: number;
  actual_output_tokens?: number;
  settle_hash: string;
}

/** A refusal or error the SQL answered with, as an ApiError (with Retry-After when the SQL knows it). */
export function ledgerError(result: Json): ApiError | null {
  const error = result.error;
  if (typeof error !== 'object' || error === null) return null;
  const { type, message, ...details } = error as Json;
  const headers: Record<string, string> = {};
  if (typeof result.retry_after === 'number' && result.retry_after > 0) headers['retry-after'] = String(result.retry_after);
  return new ApiError(typeof type === 'string' && isErrorType(type) ? type : 'internal', String(message), details, headers);
}

function orThrow(result: Json): Json {
  const error = ledgerError(result);
  if (error) throw error;
  return result;
}

/**
 * A reserve's, a settle's or a batch's JSON, padded with spaces to 1 KiB. postgres.js holds a message shorter than
 * 1 KiB until the event loop's check phase (setImmediate), to send it together with others; a lone call or a small
 * batch then waited, with the database idle, for everything else the server did in that turn of the loop: near half
 * the bench's peak, sent at once, reserves took about half as long at the median and a third to a half less at p99.
 * Spaces are JSON whitespace: Postgres reads the same value, and PGlite and the Neon driver get a few hundred bytes
 * more.
 */
const jsonSentAtOnce = (value: unknown): string => JSON.stringify(value).padEnd(1024);

/** Every call on its own, at once: what a caller that has not configured group commit gets. */
const oneByOne: GroupCommitOptions = { maxBatch: 1, maxInFlight: Infinity };

/** A reserve or a settle, as the batch function takes it. */
type Call = { reserve: ReservePayload } | { settle: SettlePayload; id: string };

/** The ledger's SQL functions, one statement each. JSON goes in as text (`$1::text::jsonb`) so that no driver
 * encodes it a second time. Reserves and settles that arrive together go as one batch (group commit), whose
 * transactions and waits `observer` hears of. */
export function createLedger(db: Queryable, clock: Clock, grouping: GroupCommitOptions = oneByOne, observer?: GroupCommitObserver) {
  const at = () => clock.now()?.toISOString() ?? null;
  const call = async (text: string, params: unknown[]): Promise<Json> => {
    const [row] = await db.query<{ result: Json }>(text, params);
    if (!row) throw new Error(`no result from ${text}`);
    return row.result;
  };
  const batched = groupCommit(
    (one: Call) => 'reserve' in one
      ? call('select spendgate.reserve($1::text::jsonb, $2::timestamptz) as result', [jsonSentAtOnce(one.reserve), at()])
      : call('select spendgate.settle($1::uuid, $2::text::jsonb, $3::timestamptz) as result', [one.id, jsonSentAtOnce(one.settle), at()]),
    async (calls) => {
      const rows = await db.query<{ result: Json }>('select result from spendgate.run_batch($1::text::jsonb, $2::timestamptz) as result',
                                                    [jsonSentAtOnce(calls), at()]);
      if (rows.length !== calls.length) throw new Error(`${rows.length} results for ${calls.length} calls from spendgate.run_batch`);
      return rows.map((row) => row.result);
    },
    grouping,
    observer,
  );
  return {
    /** Answers refusals as results (not thrown): the caller needs their scopes for the rate-limit headers. */
    reserve: (payload: ReservePayload) => batched({ reserve: payload }),
    /** What reserve would answer, with nothing written. */
    checkReserve: (payload: ReservePayload) =>
      call('select spendgate.check_reserve($1::text::jsonb, $2::timestamptz) as result', [jsonSentAtOnce(payload), at()]),
    settle: async (id: string, payload: SettlePayload) => orThrow(await batched({ settle: payload, id })),
    release: async (id: string) =>
      orThrow(await call('select spendgate.release($1::uuid, $2::timestamptz) as result', [id, at()])),
    extend: async (id: string, ttlSeconds: number) =>
      orThrow(await call('select spendgate.extend($1::uuid, $2::integer, $3::timestamptz) as result', [id, ttlSeconds, at()])),
    getReservation: async (id: string) =>
      orThrow(await call('select spendgate.get_reservation($1::uuid, $2::timestamptz) as result', [id, at()])),
    /** Expires up to `batch` stale holds in one transaction; returns how many. */
    sweepBatch: async (batch: number): Promise<number> => {
      const [row] = await db.query<{ expired: number }>('select spendgate.sweep($1::timestamptz, $2::integer) as expired', [at(), batch]);
      return Number(row?.expired ?? 0);
    },
    audit: () => call('select spendgate.audit() as result', []),
    /** Everything the dashboard shows: the top `scopes` scopes, `hours` of spend, `list` of each list. */
    dashboard: (hours: number, scopes: number, list: number) =>
      call('select spendgate.dashboard($1::integer, $2::integer, $3::integer, $4::timestamptz) as result', [hours, scopes, list, at()]),
    listEvents: (filter: { type: string | null; kind: string | null; id: string | null },
                 before: { created_at: string; event_id: string } | null, count: number) =>
      call('select spendgate.list_events($1, $2, $3, $4::timestamptz, $5::uuid, $6::integer) as result',
           [filter.type, filter.kind, filter.id, before?.created_at ?? null, before?.event_id ?? null, count]),
    putLimit: async (kind: string, id: string, body: Json) =>
      orThrow(await call('select spendgate.put_limit($1, $2, $3::text::jsonb, $4::timestamptz) as result', [kind, id, JSON.stringify(body), at()])),
    getLimit: async (kind: string, id: string) =>
      orThrow(await call('select spendgate.get_limit($1, $2, $3::timestamptz) as result', [kind, id, at()])),
    listLimits: (kind: string | null, after: ScopeRef | null, count: number) =>
      call('select spendgate.list_limits($1, $2, $3, $4::integer, $5::timestamptz) as result',
           [kind, after?.kind ?? null, after?.id ?? null, count, at()]),
    deleteLimit: async (kind: string, id: string) =>
      orThrow(await call('select spendgate.delete_limit($1, $2) as result', [kind, id])),
    putModel: (name: string, entry: Json) =>
      call('select spendgate.put_model($1, $2::text::jsonb, $3::timestamptz) as result', [name, JSON.stringify(entry), at()]),
    getModel: async (name: string) => orThrow(await call('select spendgate.get_model($1) as result', [name])),
    importModels: async (entries: Record<string, Json>): Promise<number> => {
      const [row] = await db.query<{ imported: number }>('select spendgate.import_models($1::text::jsonb, $2::timestamptz) as imported',
                                                         [JSON.stringify(entries), at()]);
      return Number(row?.imported ?? 0);
    },
    ping: async () => {
      await db.query('select 1');
    },
  };
}

export type Ledger = ReturnType<typeof createLedger>;
