-- spendgate's tables. Everything lives in the `spendgate` schema.
--
-- The ledger is `reservations` (one row per hold) with `reservation_counters` (which counters a hold charged).
-- `counters` are running totals per scope (and per scope + model) that always equal what the ledger implies;
-- `GET /v1/audit` recomputes them from the ledger to prove it. No foreign key crosses from one tenant's rows to
-- another's and no sequence is used, so the schema can later be distributed by scope (see README).

create schema if not exists spendgate;

-- The price table: entries in the format of LiteLLM's model_prices_and_context_window.json, kept whole
-- (unknown fields too). Costs are JSON numbers, which jsonb stores as exact numerics.
create table spendgate.models (
  name       text primary key,
  entry      jsonb not null,
  updated_at timestamptz not null default now()
);

-- Serves the alias lookup (spendgate.model_aliases): the entries whose name ends with "/<a bare name>" are those
-- whose reversed name starts with the reversed bare name and '/'. text_pattern_ops orders by bytes, whatever the
-- database's collation, so that prefix is one range of this index.
create index models_reversed_name on spendgate.models (reverse(name) text_pattern_ops);

-- Configured limits, one row per part of a scope. `model` names the part:
--   ''          the scope itself;
--   a model     the scope's use of that model (a model limit without its own budget_duration follows the scope's);
--   '@<n>'      the scope's budget window n (1, 2, ...): one more budget with its own period, enforced with the others.
-- Model names never start with '@' (the API refuses them), so the three cannot collide.
create table spendgate.limits (
  kind            text not null,
  id              text not null,
  model           text not null default '',
  max_budget      numeric check (max_budget >= 0),
  soft_budget     numeric check (soft_budget >= 0),
  budget_duration text check (budget_duration in ('1h', '24h', '1d', '7d', '30d', '1mo')),  -- 24h = 1d
  -- How periods are laid out: 'rolling' counts from budget_anchor (when the duration was set), 'anchor' from a
  -- billing anchor the caller gave (budget_anchor), 'calendar' from UTC calendar boundaries.
  budget_align    text check (budget_align in ('rolling', 'anchor', 'calendar')),
  budget_anchor   timestamptz,
  -- strict: a hold must fit whole; fit: a hold shrinks to what remains when something does.
  admission       text not null default 'strict' check (admission in ('strict', 'fit')),
  rpm             integer check (rpm >= 0),
  tpm             bigint check (tpm >= 0),
  itpm            bigint check (itpm >= 0),  -- input tokens per window, as Anthropic meters them
  otpm            bigint check (otpm >= 0),  -- output tokens per window
  max_parallel    integer check (max_parallel >= 0),
  created_at      timestamptz not null,
  updated_at      timestamptz not null,
  primary key (kind, id, model)
);

-- Settings every instance must agree on, so they live in the database: one row.
create table spendgate.settings (
  singleton           boolean primary key default true check (singleton),
  rate_window_seconds integer not null default 60 check (rate_window_seconds between 1 and 3600)
);
insert into spendgate.settings default values;

-- Running totals, one row per scope ever named (model = '') and per scope + model that has a model limit.
create table spendgate.counters (
  kind          text not null,
  id            text not null,
  model         text not null default '',
  -- Start of the budget period that `spend` covers; null while the scope has never had a budget_duration.
  period_start  timestamptz,
  spend         numeric not null default 0,  -- settled cost charged in this period
  reserved      numeric not null default 0,  -- sum of live holds, whatever period they began in
  in_flight     integer not null default 0,  -- number of live holds
  -- Rate windows: fixed windows of spendgate.rate_window() seconds; `prev` is the window before `window_start`.
  window_start  timestamptz,
  requests_cur  integer not null default 0,
  requests_prev integer not null default 0,
  tokens_cur    bigint not null default 0,   -- what TPM counts (SPENDGATE_TPM_COUNT)
  tokens_prev   bigint not null default 0,
  itokens_cur   bigint not null default 0,   -- input tokens (ITPM)
  itokens_prev  bigint not null default 0,
  otokens_cur   bigint not null default 0,   -- output tokens (OTPM)
  otokens_prev  bigint not null default 0,
  first_seen    timestamptz not null,
  primary key (kind, id, model)
);

-- What the ledger's columns may hold: amounts and token counts never negative, and a reservation's four states.
-- Domains rather than CHECK constraints on the table: Postgres parses and plans a table's CHECK expressions again
-- for every statement that writes to it, and every reserve and settle writes a reservation (nine of them cost the
-- backend 6-8% of its CPU per reserve + settle); a domain's check is prepared once per connection.
create domain spendgate.nonnegative_amount as numeric check (value >= 0);
create domain spendgate.nonnegative_count as bigint check (value >= 0);
create domain spendgate.reservation_status as text check (value in ('held', 'settled', 'released', 'expired'));

-- The ledger.
create table spendgate.reservations (
  id              uuid primary key,
  status          spendgate.reservation_status not null,
  model           text,             -- as the caller named it
  model_entry     jsonb,            -- the price-table entry used, as it was at reserve time
  reserved_cost   spendgate.nonnegative_amount not null,
  reserved_tokens spendgate.nonnegative_count not null,         -- what TPM counts
  reserved_input_tokens  spendgate.nonnegative_count not null default 0,
  reserved_output_tokens spendgate.nonnegative_count not null default 0,
  estimate        jsonb not null,   -- how reserved_cost and reserved_tokens were reached
  idempotency_key text,
  request_hash    text,
  window_start    timestamptz not null,  -- the rate window its tokens were counted in
  created_at      timestamptz not null,
  expires_at      timestamptz not null,
  settled_at      timestamptz,
  released_at     timestamptz,
  expired_at      timestamptz,
  actual_cost     spendgate.nonnegative_amount,
  actual_tokens   spendgate.nonnegative_count,
  actual_input_tokens  spendgate.nonnegative_count,
  actual_output_tokens spendgate.nonnegative_count,
  usage           jsonb,            -- the usage as normalized for pricing
  cost_source     text,             -- caller | usage | hold
  settle_hash     text
);

-- An idempotency key is optional, so only keyed rows are indexed. A unique constraint indexed every row, keyless
-- ones as nulls: an index entry written by every reserve and again by every settle (whose update cannot be HOT: it
-- changes the status and settled_at, which indexes read). Without them, a reserve + settle cost the backend 5-8%
-- less CPU (serially, in batches of 8, hot and spread, on a ledger of 100,000 keyless reservations).
create unique index reservations_by_idempotency_key on spendgate.reservations (idempotency_key)
  where idempotency_key is not null;

-- The sweeper and the stale-hold check read only live holds.
create index reservations_held_by_expiry on spendgate.reservations (expires_at) where status = 'held';

-- Which counters each hold charged, and the budget period its actual cost landed in.
create table spendgate.reservation_counters (
  reservation_id uuid not null references spendgate.reservations (id),
  kind           text not null,
  id             text not null,
  model          text not null,
  charged_period timestamptz,
  primary key (reservation_id, kind, id, model)
);

create index reservation_counters_by_counter on spendgate.reservation_counters (kind, id, model);

-- A counter's key; arrays of it name the counters one call locks, always sorted by spendgate.sorted_keys().
create type spendgate.counter_key as (kind text, id text, model text);

-- Token counts a hold moves: what TPM counts, input tokens (ITPM), output tokens (OTPM).
create type spendgate.token_counts as (tokens bigint, input bigint, output bigint);

-- A limit as it applies to one counter (a model limit with the scope's budget period filled in).
create type spendgate.scope_limit as (
  max_budget      numeric,
  soft_budget     numeric,
  budget_duration text,
  budget_align    text,
  budget_anchor   timestamptz,
  admission       text,
  rpm             integer,
  tpm             bigint,
  itpm            bigint,
  otpm            bigint,
  max_parallel    integer
);

-- Threshold crossings, recorded once per counter and budget period in the transaction that crossed them
-- (soft_budget, budget_80, budget_100), and budget refusals (budget_refused, once per counter and period). This
-- is also the webhook outbox: delivered_at, attempts and next_attempt_at belong to the deliverer.
create table spendgate.events (
  event_id        uuid primary key,
  type            text not null check (type in ('soft_budget', 'budget_80', 'budget_100', 'budget_refused')),
  kind            text not null,
  id              text not null,
  model           text not null,
  period_start    timestamptz,  -- null for a budget without a period
  created_at      timestamptz not null,
  details         jsonb not null,
  delivered_at    timestamptz,
  attempts        integer not null default 0,
  next_attempt_at timestamptz
);
create unique index events_once_per_period
  on spendgate.events (kind, id, model, type, coalesce(period_start, '-infinity'));
create index events_newest on spendgate.events (created_at desc, event_id);
create index events_undelivered on spendgate.events (next_attempt_at) where delivered_at is null;

-- Refused reserves, kept a day: a retry with the same idempotency key gets the same refusal (as TigerBeetle
-- answers a failed transfer id), so a client looping on one key cannot slip in when a window turns.
create table spendgate.refusals (
  refusal_id      uuid primary key,
  idempotency_key text,
  request_hash    text,
  type            text not null,
  scope           jsonb,
  created_at      timestamptz not null,
  answer          jsonb not null
);
create unique index refusals_by_idempotency_key on spendgate.refusals (idempotency_key) where idempotency_key is not null;
create index refusals_by_age on spendgate.refusals (created_at);
