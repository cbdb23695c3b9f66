/**
 * The spendgate client (`import { createClient } from 'spendgate/client'`): every route of the API, typed from
 * the server's own schemas, over `fetch` alone. Amounts are decimal strings both ways.
 *
 *   const spendgate = createClient({ url: process.env.SPENDGATE_URL, token: process.env.SPENDGATE_SERVICE_TOKEN });
 *   const completion = await spendgate.withBudget({ scopes: { key: 'sk-12' }, model: 'gpt-4o', request },
 *     () => openai.chat.completions.create(request));
 */
import type {
  AuditReport, Dashboard, DashboardQuery, EventListQuery, EventPage, ExtendRequest, Health, Limit, LimitDeleted, LimitListQuery, LimitPage, LimitRequest, Model,
  ModelEntry, ModelImport, ModelImportResult, Released, Reservation, ReserveCheck, Reserved, ReserveRequest, Settled,
  SettleRequest, Swept,
} from './client-types.ts';
import { type CallOptions, createTransport, type TransportOptions } from './client-transport.ts';
import { withBudget, type WithBudgetOptions } from './with-budget.ts';

export * from './client-errors.ts';
export type * from './client-types.ts';
export type { CallOptions, FetchFunction, TransportOptions as ClientOptions } from './client-transport.ts';
export type { WithBudgetOptions } from './with-budget.ts';

export interface ReserveOptions extends CallOptions {
  /** Sent as the body's idempotency_key when the body has none. Without either, the client makes one, and every
   * retry of this call reuses it, so a retry never holds twice. */
  idempotencyKey?: string;
}

export interface Reservations {
  create(body: ReserveRequest, options?: ReserveOptions): Promise<Reserved>;
  /** What create would answer, with nothing written: the hold it would take, or the error it would throw. */
  check(body: ReserveRequest, options?: CallOptions): Promise<ReserveCheck>;
  get(id: string, options?: CallOptions): Promise<Reservation>;
  settle(id: string, body: SettleRequest, options?: CallOptions): Promise<Settled>;
  release(id: string, options?: CallOptions): Promise<Released>;
  extend(id: string, body?: ExtendRequest, options?: CallOptions): Promise<Reservation>;
}

export interface Limits {
  set(kind: string, id: string, body: LimitRequest, options?: CallOptions): Promise<Limit>;
  get(kind: string, id: string, options?: CallOptions): Promise<Limit>;
  list(query?: LimitListQuery, options?: CallOptions): Promise<LimitPage>;
  /** Every scope of the list, page after page. */
  listAll(query?: Omit<LimitListQuery, 'cursor'>, options?: CallOptions): AsyncGenerator<Limit>;
  delete(kind: string, id: string, options?: CallOptions): Promise<LimitDeleted>;
}

export interface Models {
  set(name: string, entry: ModelEntry, options?: CallOptions): Promise<Model>;
  get(name: string, options?: CallOptions): Promise<Model>;
  /** A whole LiteLLM model_prices_and_context_window.json. */
  import(file: ModelImport, options?: CallOptions): Promise<ModelImportResult>;
}

export interface SpendgateClient {
  reservations: Reservations;
  limits: Limits;
  models: Models;
  /** Budget events, newest first (soft_budget, budget_80, budget_100, budget_refused). */
  events(query?: EventListQuery, options?: CallOptions): Promise<EventPage>;
  sweep(options?: CallOptions): Promise<Swept>;
  audit(options?: CallOptions): Promise<AuditReport>;
  /** What the dashboard page shows, in one snapshot (admin): scopes by spend, live holds, refusals of the last day,
   * settled cost per hour over `hours` (1-168, default 48), the latest events. */
  dashboard(query?: DashboardQuery, options?: CallOptions): Promise<Dashboard>;
  health(options?: CallOptions): Promise<Health>;
  /** Reserve, run `call`, settle from its usage (or release if it throws); see with-budget.ts. */
  withBudget<T>(options: WithBudgetOptions, call: (hold: Reserved) => T | Promise<T>): Promise<T>;
}

const segment = encodeURIComponent;

export function createClient(options: TransportOptions): SpendgateClient {
  const send = createTransport(options);
  const body = async <T>(method: string, path: string, call?: Parameters<typeof send>[2]) => (await send<T>(method, path, call)).body;
  const reservation = (id: string) => `/v1/reservations/${segment(id)}`;
  const scope = (kind: string, id: string) => `/v1/limits/${segment(kind)}/${segment(id)}`;

  const reservations: Reservations = {
    create: (request, { idempotencyKey, ...call } = {}) => {
      const idempotency_key = request.idempotency_key ?? idempotencyKey ?? crypto.randomUUID();
      return body<Reserved>('POST', '/v1/reservations', { ...call, body: { ...request, idempotency_key } });
    },
    check: (request, call) => body<ReserveCheck>('POST', '/v1/reservations/check', { ...call, body: request }),
    get: (id, call) => body<Reservation>('GET', reservation(id), call),
    settle: (id, request, call) => body<Settled>('POST', `${reservation(id)}/settle`, { ...call, body: request }),
    release: (id, call) => body<Released>('POST', `${reservation(id)}/release`, call),
    extend: (id, request = {}, call) => body<Reservation>('POST', `${reservation(id)}/extend`, { ...call, body: request }),
  };

  const limits: Limits = {
    set: (kind, id, request, call) => body<Limit>('PUT', scope(kind, id), { ...call, body: request }),
    get: (kind, id, call) => body<Limit>('GET', scope(kind, id), call),
    list: (query = {}, call) => body<LimitPage>('GET', '/v1/limits', { ...call, query }),
    async *listAll(query = {}, call) {
      let cursor: string | undefined;
      do {
        const page = await limits.list({ ...query, cursor }, call);
        yield* page.data;
        cursor = page.next_cursor ?? undefined;
      } while (cursor !== undefined);
    },
    delete: (kind, id, call) => body<LimitDeleted>('DELETE', scope(kind, id), call),
  };

  const models: Models = {
    set: (name, entry, call) => body<Model>('PUT', `/v1/models/${segment(name)}`, { ...call, body: entry }),
    get: (name, call) => body<Model>('GET', `/v1/models/${segment(name)}`, call),
    import: (file, call) => body<ModelImportResult>('POST', '/v1/models/import', { ...call, body: file }),
  };

  const client: SpendgateClient = {
    reservations,
    limits,
    models,
    events: (query = {}, call) => body<EventPage>('GET', '/v1/events', { ...call, query }),
    sweep: (call) => body<Swept>('POST', '/v1/sweep', call),
    audit: (call) => body<AuditReport>('GET', '/v1/audit', call),
    dashboard: (query = {}, call) => body<Dashboard>('GET', '/v1/dashboard', { ...call, query }),
    health: (call) => body<Health>('GET', '/health', call),
    withBudget: (budget, call) => withBudget(client, budget, call),
  };
  return client;
}
