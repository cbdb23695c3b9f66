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

-- Configured limits. `model = ''` is the scope-wide limit; any other value limits the scope's use of that model.
-- A model limit without its own budget_duration follows the scope's.
create table spendgate.limits (
  kind            text not null,
  id              text not null,
  model           text not null default '',
  max_budget      numeric check (max_budget >= 0),
  soft_budget     numeric check (soft_budget >= 0),
  budget_duration text check (budget_duration in ('1h', '24h', '1d', '7d', '30d', '1mo')),  -- 24h = 1d
  -- Fixed-length periods are counted from this instant; calendar months ignore it.
  budget_anchor   timestamptz,
  rpm             integer check (rpm >= 0),
  tpm             bigint check (tpm >= 0),
  max_parallel    integer check (max_parallel >= 0),
  created_at      timestamptz not null,
  updated_at      timestamptz not null,
  primary key (kind, id, model)
);

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
  tokens_cur    bigint not null default 0,
  tokens_prev   bigint not null default 0,
  first_seen    timestamptz not null,
  primary key (kind, id, model)
);

-- The ledger.
create table spendgate.reservations (
  id              uuid primary key,
  status          text not null check (status in ('held', 'settled', 'released', 'expired')),
  model           text,             -- as the caller named it
  model_entry     jsonb,            -- the price-table entry used, as it was at reserve time
  reserved_cost   numeric not null check (reserved_cost >= 0),
  reserved_tokens bigint not null check (reserved_tokens >= 0),
  estimate        jsonb not null,   -- how reserved_cost and reserved_tokens were reached
  idempotency_key text unique,
  request_hash    text,
  window_start    timestamptz not null,  -- the rate window its tokens were counted in
  created_at      timestamptz not null,
  expires_at      timestamptz not null,
  settled_at      timestamptz,
  released_at     timestamptz,
  expired_at      timestamptz,
  actual_cost     numeric check (actual_cost >= 0),
  actual_tokens   bigint check (actual_tokens >= 0),
  usage           jsonb,            -- the usage as normalized for pricing
  cost_source     text,             -- caller | usage | hold
  settle_hash     text
);

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

-- A limit as it applies to one counter (a model limit with the scope's budget_duration filled in).
create type spendgate.scope_limit as (
  max_budget      numeric,
  soft_budget     numeric,
  budget_duration text,
  budget_anchor   timestamptz,
  rpm             integer,
  tpm             bigint,
  max_parallel    integer
);
