/**
 * The client's request and answer types, derived from the zod schemas the routes validate and answer with, so the
 * client cannot drift from the server. Type-only imports: nothing of the server is loaded by the client.
 */
import type { z } from '@hono/zod-openapi';
import type * as audit from './routes/v1_audit.ts';
import type * as dashboard from './routes/v1_dashboard.ts';
import type * as events from './routes/v1_events.ts';
import type * as check from './routes/v1_reservations_check.ts';
import type * as health from './routes/health.ts';
import type * as limitsDelete from './routes/v1_limits_delete.ts';
import type * as limitsGet from './routes/v1_limits_get.ts';
import type * as limitsList from './routes/v1_limits_list.ts';
import type * as limitsPut from './routes/v1_limits_put.ts';
import type * as modelsImport from './routes/v1_models_import.ts';
import type * as modelsPut from './routes/v1_models_put.ts';
import type * as reserve from './routes/v1_reservations_create.ts';
import type * as extend from './routes/v1_reservations_extend.ts';
import type * as release from './routes/v1_reservations_release.ts';
import type * as settle from './routes/v1_reservations_settle.ts';
import type * as sweep from './routes/v1_sweep.ts';
import type { Reservation as ReservationSchema } from './schemas.ts';

type JsonSchemaOf<T> = T extends { content: { 'application/json': { schema: infer S extends z.ZodType } } } ? S : never;
/** What a route accepts as its JSON body. */
type BodyOf<R> = R extends { request: { body: infer B } } ? z.input<JsonSchemaOf<B>> : never;
/** What a route answers with `status`. */
type AnswerOf<R, Status extends number> = R extends { responses: { [S in Status]: infer A } } ? z.output<JsonSchemaOf<A>> : never;
type QueryOf<R> = R extends { request: { query: infer Q extends z.ZodType } } ? z.input<Q> : never;

/**
 * Amounts accept a string or a JSON number on the wire; the client types them as decimal strings only, so that no
 * caller hands it a binary float for money.
 */
export type DecimalText<T> = unknown extends T
  ? T
  : string extends NonNullable<T>
    ? number extends NonNullable<T>
      ? string | Extract<T, null | undefined>
      : T
    : T extends readonly unknown[]
      ? { [K in keyof T]: DecimalText<T[K]> }
      : T extends object
        ? { [K in keyof T]: DecimalText<T[K]> }
        : T;

/** A provider's own object (a chat request, a usage object): any SDK's type, passed through as it is. */
export type ProviderObject = object;

export type ReserveRequest = Omit<DecimalText<BodyOf<typeof reserve.route>>, 'request'> & {
  /** The provider request about to be sent (OpenAI- or Anthropic-shaped); read to estimate, never stored. */
  request?: ProviderObject;
};
export type SettleRequest = Omit<DecimalText<BodyOf<typeof settle.route>>, 'usage'> & {
  /** The provider's usage object as returned (OpenAI, OpenAI Responses, Anthropic, Gemini). */
  usage?: ProviderObject;
};
export type ExtendRequest = BodyOf<typeof extend.route>;
export type LimitRequest = DecimalText<BodyOf<typeof limitsPut.route>>;
export type ModelEntry = DecimalText<BodyOf<typeof modelsPut.route>>;
export type ModelImport = BodyOf<typeof modelsImport.route>;
// `limit` is coerced from the query string, so its schema accepts anything: a number is what it means.
export type LimitListQuery = Omit<QueryOf<typeof limitsList.route>, 'limit'> & { limit?: number };

// `limit` is coerced from the query string, as for LimitListQuery.
export type EventListQuery = Omit<QueryOf<typeof events.route>, 'limit'> & { limit?: number };

// `hours` (1-168, default 48) is coerced from the query string, as for LimitListQuery.
export type DashboardQuery = Omit<QueryOf<typeof dashboard.route>, 'hours'> & { hours?: number };

export type Reservation = z.output<typeof ReservationSchema>;
export type ReserveCheck = AnswerOf<typeof check.route, 200>;
export type EventPage = AnswerOf<typeof events.route, 200>;
export type Reserved = AnswerOf<typeof reserve.route, 201>;
export type Settled = AnswerOf<typeof settle.route, 200>;
export type Released = AnswerOf<typeof release.route, 200>;
export type Limit = AnswerOf<typeof limitsGet.route, 200>;
export type LimitPage = AnswerOf<typeof limitsList.route, 200>;
export type LimitDeleted = AnswerOf<typeof limitsDelete.route, 200>;
export type Model = AnswerOf<typeof modelsPut.route, 200>;
export type ModelImportResult = AnswerOf<typeof modelsImport.route, 200>;
export type Swept = AnswerOf<(typeof sweep.routes)[0], 200>;
export type AuditReport = AnswerOf<typeof audit.route, 200>;
export type Dashboard = AnswerOf<typeof dashboard.route, 200>;
export type Health = AnswerOf<typeof health.route, 200>;
