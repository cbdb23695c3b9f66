-- Time, money formatting, budget periods, rate windows and the counter arithmetic every state change shares.

-- Small SQL functions here are declared no stricter than their bodies (stable where a body calls to_char,
-- jsonb_build_object or time-zone arithmetic), so that Postgres inlines them into the calling statement: one it
-- cannot inline is planned again at every call, and the ledger's functions make many such calls per state change.

-- The one clock. Every function takes `p_at` and reads the time only through this: production passes null and
-- gets the database's clock (serverless instances' clocks disagree; the database's is the only one); tests inject
-- a time so that periods, windows and expiry move without sleeping. A state change reads it once it holds its
-- locks, so that changes to one counter are stamped in the order they commit, even when one waited on a lock.
create function spendgate.clock(p_at timestamptz) returns timestamptz
language sql volatile as $$ select coalesce(p_at, clock_timestamp()) $$;

-- The ids of the rows spendgate makes: random UUIDs whose first 48 bits are the time in milliseconds (the layout of
-- UUID version 7; Postgres 18 has uuidv7(), 15 does not). Made in time order, a new reservation's id lands on the
-- last pages of the btrees it leads (the reservations' and the links'), not on a random page each: after a
-- checkpoint, the first change to a page writes the whole page to the WAL. Serially on a hot budget, just after a
-- checkpoint, a reserve + settle wrote 0.55 whole pages and 5.1 kB of WAL with random ids, 0.02 and 2.1 kB with
-- these. The time is the real one, not an injected clock(): the order that matters is the order of the inserts.
-- 74 bits stay random, so an id is no easier to guess. Setting bits 52 and 53 turns gen_random_uuid()'s version
-- (4) into 7.
create function spendgate.time_ordered_uuid() returns uuid
language sql volatile as $$
  select encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                                        placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
                                        from 1 for 6),
                                52, 1), 53, 1), 'hex')::uuid
$$;

-- Money on the wire: exact decimal text with at least six places ("0.409600"), more when the value needs them.
create function spendgate.money(v numeric) returns text
language sql immutable as $$
  select case when v is null then null
              when scale(trim_scale(v)) <= 6 then round(v, 6)::text
              else trim_scale(v)::text end
$$;

create function spendgate.iso(t timestamptz) returns text
language sql stable as $$ select to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

create function spendgate.error(p_type text, p_message text, p_details jsonb default '{}') returns jsonb
language sql stable as $$
  select jsonb_build_object('error', jsonb_build_object('type', p_type, 'message', p_message) || p_details)
$$;

-- A counter named for callers: {kind, id}, with the model of a model limit or the number of a budget window.
create function spendgate.scope_ref(p_kind text, p_id text, p_model text) returns jsonb
language sql stable as $$
  select jsonb_build_object('kind', p_kind, 'id', p_id)
         || case when p_model like '@%' then jsonb_build_object('window', substr(p_model, 2)::integer)
                 when p_model <> '' then jsonb_build_object('model', p_model) else '{}' end
$$;

create function spendgate.scope_name(p_kind text, p_id text, p_model text) returns text
language sql immutable as $$
  select p_kind || ' ' || p_id || case when p_model like '@%' then ' (budget window ' || substr(p_model, 2) || ')'
                                       when p_model <> '' then ' on model ' || p_model else '' end
$$;

-- The counter key of a scope_ref.
create function spendgate.ref_model(p_ref jsonb) returns text
language sql immutable as $$
  select coalesce(p_ref ->> 'model', '@' || (p_ref ->> 'window'), '')
$$;

-- Budget periods. A period is laid out by its limit's alignment:
--   rolling   periods of the duration counted from budget_anchor (the moment the duration was set);
--   anchor    the same, from a billing anchor the caller gave ("monthly from the 15th");
--   calendar  UTC calendar boundaries: the hour, the day, the ISO week (from Monday), the month.
-- Fixed lengths are in hours, never days: adding a day to a timestamptz follows the session's time zone across
-- daylight saving. Months are counted in UTC from the anchor, so an anchor on the 31st gives the last day of
-- shorter months and the 31st again after them.
create function spendgate.duration_interval(p_duration text) returns interval
language sql immutable as $$
  select case p_duration
    when '1h' then interval '1 hour' when '24h' then interval '24 hours' when '1d' then interval '24 hours'
    when '7d' then interval '168 hours'
    when '30d' then interval '720 hours' when '1mo' then interval '1 month' end
$$;

-- The n-th month after an anchor, in UTC.
create function spendgate.months_after(p_anchor timestamptz, p_months integer) returns timestamptz
language sql immutable as $$
  select ((p_anchor at time zone 'UTC') + make_interval(months => p_months)) at time zone 'UTC'
$$;

-- Whole months from the anchor to p_at (the number of the period p_at is in).
create function spendgate.months_since(p_anchor timestamptz, p_at timestamptz) returns integer
language plpgsql immutable as $$
declare
  n integer := ((extract(year from p_at at time zone 'UTC') - extract(year from p_anchor at time zone 'UTC')) * 12
                + extract(month from p_at at time zone 'UTC') - extract(month from p_anchor at time zone 'UTC'))::integer;
begin
  if spendgate.months_after(p_anchor, n) > p_at then n := n - 1; end if;
  return n;
end $$;

create function spendgate.period_start(p_duration text, p_align text, p_anchor timestamptz, p_at timestamptz)
returns timestamptz language sql stable as $$
  select case
    when p_duration is null then null
    when p_align = 'calendar' then
      case p_duration when '1h' then date_trunc('hour', p_at, 'UTC')
                      when '7d' then date_trunc('week', p_at, 'UTC')
                      when '1mo' then date_trunc('month', p_at, 'UTC')
                      else date_trunc('day', p_at, 'UTC') end
    when p_duration = '1mo' then spendgate.months_after(p_anchor, spendgate.months_since(p_anchor, p_at))
    else p_anchor + (floor(extract(epoch from p_at - p_anchor)
                           / extract(epoch from spendgate.duration_interval(p_duration)))
                     * extract(epoch from spendgate.duration_interval(p_duration)))::float8 * interval '1 second'
  end
$$;

create function spendgate.period_end(p_duration text, p_align text, p_anchor timestamptz, p_start timestamptz)
returns timestamptz language sql stable as $$
  select case
    when p_duration is null or p_start is null then null
    when p_duration = '1mo' and p_align = 'calendar' then spendgate.months_after(p_start, 1)
    when p_duration = '1mo' then spendgate.months_after(p_anchor, spendgate.months_since(p_anchor, p_start) + 1)
    else p_start + spendgate.duration_interval(p_duration)
  end
$$;

-- When the counter next rolls: the end of the period p_at is in under the limit's layout now. Not period_end of
-- the counter's own period_start, which after a change of layout may lie off the new boundaries (a rolling day
-- begun at 10:00, switched to calendar days, rolls at midnight, not at 10:00).
create function spendgate.next_reset(p_duration text, p_align text, p_anchor timestamptz, p_at timestamptz)
returns timestamptz language plpgsql stable as $$
declare
  -- A variable, not period_end(..., period_start(...)): period_end reads its start three times, and Postgres
  -- inlines a SQL function only when each argument it repeats is cheap. Not inlined, it was parsed and planned
  -- again in every transaction that showed a scope (a tenth of a reserve's CPU).
  started timestamptz := spendgate.period_start(p_duration, p_align, p_anchor, p_at);
begin
  return spendgate.period_end(p_duration, p_align, p_anchor, started);
end $$;

-- Rate windows: fixed windows of spendgate.settings.rate_window_seconds (60 unless configured), aligned to the
-- epoch, read with the two-window weighted approximation (used = prev × unexpired share of the window + cur), which
-- assumes the previous window's requests were spread evenly. It never counts less than the current window alone.
-- rate_window() is that setting as a constant: a reserve reads it dozens of times, and a function that reads the
-- table is a query each time, while an immutable SQL function of a constant is folded into every plan and
-- expression that calls it. spendgate.settings stays the one source: the trigger below rewrites the function in
-- the transaction that changes the setting, and PostgreSQL drops the plans that folded the old value.
create function spendgate.rate_window() returns integer
language sql immutable as $$ select 60 $$;

create function spendgate.follow_rate_window() returns trigger
language plpgsql as $$
begin
  execute format('create or replace function spendgate.rate_window() returns integer language sql immutable as %L',
                 format('select %s', new.rate_window_seconds::integer));
  return new;
end $$;

create trigger settings_rate_window
  after insert or update of rate_window_seconds on spendgate.settings
  for each row execute function spendgate.follow_rate_window();

create function spendgate.window_start(p_at timestamptz) returns timestamptz
language sql stable as $$
  select to_timestamp((floor(extract(epoch from p_at) / spendgate.rate_window()) * spendgate.rate_window())::float8)
$$;

-- Seconds into the window. A call whose time is before the window began (its transaction started earlier and
-- waited on a lock) counts as at the window's start: windows never move backwards.
create function spendgate.window_elapsed(p_window_start timestamptz, p_at timestamptz) returns numeric
language sql immutable as $$ select extract(epoch from greatest(p_at, p_window_start) - p_window_start) $$;

create function spendgate.window_used(p_prev bigint, p_cur bigint, p_window_start timestamptz, p_at timestamptz)
returns numeric language sql stable as $$
  select p_prev * (spendgate.rate_window() - spendgate.window_elapsed(p_window_start, p_at)) / spendgate.rate_window()
         + p_cur
$$;

-- Seconds until `need` more fits under `lim`, assuming no other traffic; null when it never will (need > lim).
create function spendgate.window_wait(p_prev bigint, p_cur bigint, p_need bigint, p_lim bigint,
                                      p_window_start timestamptz, p_at timestamptz)
returns integer language plpgsql stable as $$
declare
  w numeric := spendgate.rate_window();
  e numeric := spendgate.window_elapsed(p_window_start, p_at);
  wait numeric;
begin
  if p_need > p_lim then return null; end if;
  if p_cur + p_need <= p_lim then
    -- The current window has room; the previous window's weight must fade enough.
    wait := w - e - (p_lim - p_need - p_cur) * w / greatest(p_prev, 1);
  else
    -- Only the next window has room, once this window's count (then `prev`) has faded enough.
    wait := (w - e) + greatest(0, w - (p_lim - p_need) * w / p_cur);
  end if;
  return greatest(1, ceil(wait))::integer;
end $$;

-- Seconds until the window forgets everything counted so far (OpenAI's x-ratelimit-reset-*).
create function spendgate.window_reset(p_prev bigint, p_cur bigint, p_window_start timestamptz, p_at timestamptz)
returns integer language sql stable as $$
  select ceil(case when p_cur > 0 then 2 * spendgate.rate_window() - spendgate.window_elapsed(p_window_start, p_at)
                   when p_prev > 0 then spendgate.rate_window() - spendgate.window_elapsed(p_window_start, p_at)
                   else 0 end)::integer
$$;

-- Seconds until a counter with `in_flight` live holds has room for one more under `max_parallel` if no call
-- settles or releases anything: until enough of its holds have expired (the n-th earliest expiry, n = in_flight
-- + 1 − max_parallel; the earliest when the scope is just full). An upper bound: a settle or release frees a slot
-- sooner. Null when it never will (max_parallel 0).
create function spendgate.parallel_wait(c spendgate.counters, p_max_parallel integer, p_at timestamptz)
returns integer language plpgsql stable as $$
declare
  frees timestamptz;
begin
  if p_max_parallel < 1 then return null; end if;
  -- Walks the live holds in expiry order (the partial index reservations_held_by_expiry), each looked up in
  -- reservation_counters' primary key, and stops at the n-th of this counter's: the live holds, never the
  -- counter's whole history. A lateral lookup rather than `exists`: the planner turns an `exists` into a join
  -- that, in a generic plan, reads every reservation the counter ever had from reservation_counters_by_counter;
  -- the `limit 1` keeps the lookup a per-hold probe.
  select r.expires_at into frees
    from spendgate.reservations r
   cross join lateral (select from spendgate.reservation_counters rc
                        where rc.reservation_id = r.id and rc.kind = c.kind and rc.id = c.id and rc.model = c.model
                        limit 1) mine
   where r.status = 'held'
   order by r.expires_at
  offset greatest(0, c.in_flight - p_max_parallel) limit 1;
  if frees is null then return null; end if;
  -- A stale hold not yet expired (its other counters were busy) frees on the next call.
  return greatest(1, ceil(extract(epoch from frees - p_at)))::integer;
end $$;

-- The limit that applies to one counter: a model limit takes the scope's budget period unless it has its own.
-- Two primary-key probes, the second only for a model limit without a period: as one statement joining the two, it
-- cost twice as much, and every state change looks up the limit of each counter it charges.
create function spendgate.effective_limit(p_kind text, p_id text, p_model text) returns spendgate.scope_limit
language plpgsql stable as $$
declare
  l spendgate.limits;
  s spendgate.limits;
begin
  select * into l from spendgate.limits where kind = p_kind and id = p_id and model = p_model;
  if l.budget_duration is null and p_model <> '' and p_model not like '@%' then
    select * into s from spendgate.limits where kind = p_kind and id = p_id and model = '';
    if found then
      l.budget_duration := s.budget_duration;
      l.budget_align := s.budget_align;
      l.budget_anchor := s.budget_anchor;
    end if;
  end if;
  return row(l.max_budget, l.soft_budget, l.budget_duration, l.budget_align, l.budget_anchor,
             coalesce(l.admission, 'strict'), l.rpm, l.tpm, l.itpm, l.otpm, l.max_parallel)::spendgate.scope_limit;
end $$;

-- A counter as it stands at p_at: spend restarts when a new budget period has begun, and the rate windows slide.
-- Pure, so reads show the same numbers that the next write will store.
create function spendgate.rolled(c spendgate.counters, l spendgate.scope_limit, p_at timestamptz)
returns spendgate.counters language plpgsql stable as $$
declare
  p timestamptz := spendgate.period_start(l.budget_duration, l.budget_align, l.budget_anchor, p_at);
  w timestamptz := spendgate.window_start(p_at);
  adjacent boolean;
begin
  if p is not null and (c.period_start is null or p > c.period_start) then
    c.period_start := p;
    c.spend := 0;
  end if;
  -- Only forwards: a call stamped before the current window (it waited on a lock) is counted in it.
  if c.window_start is null or w > c.window_start then
    adjacent := c.window_start = w - make_interval(secs => spendgate.rate_window());
    c.requests_prev := case when adjacent then c.requests_cur else 0 end;
    c.tokens_prev := case when adjacent then c.tokens_cur else 0 end;
    c.itokens_prev := case when adjacent then c.itokens_cur else 0 end;
    c.otokens_prev := case when adjacent then c.otokens_cur else 0 end;
    c.requests_cur := 0;
    c.tokens_cur := 0;
    c.itokens_cur := 0;
    c.otokens_cur := 0;
    c.window_start := w;
  end if;
  return c;
end $$;

-- A counter after a change, under its limit l. Token changes go to the window the hold was counted in
-- (p_token_window; null: the current one) while that window still counts, current or previous, and nowhere once
-- it has slid out. Pure arithmetic in one call: a state change applies it to each counter it charges.
create function spendgate.charged(c spendgate.counters, l spendgate.scope_limit, p_at timestamptz,
                                  d_spend numeric default 0, d_reserved numeric default 0,
                                  d_in_flight integer default 0, d_requests integer default 0,
                                  d_tokens spendgate.token_counts default row(0, 0, 0),
                                  p_token_window timestamptz default null)
returns spendgate.counters language plpgsql stable as $$
begin
  c := spendgate.rolled(c, l, p_at);
  c.spend := c.spend + d_spend;
  c.reserved := c.reserved + d_reserved;
  c.in_flight := c.in_flight + d_in_flight;
  c.requests_cur := c.requests_cur + d_requests;
  if p_token_window is null or p_token_window = c.window_start then
    c.tokens_cur := greatest(0, c.tokens_cur + d_tokens.tokens);
    c.itokens_cur := greatest(0, c.itokens_cur + d_tokens.input);
    c.otokens_cur := greatest(0, c.otokens_cur + d_tokens.output);
  elsif p_token_window = c.window_start - make_interval(secs => spendgate.rate_window()) then
    c.tokens_prev := greatest(0, c.tokens_prev + d_tokens.tokens);
    c.itokens_prev := greatest(0, c.itokens_prev + d_tokens.input);
    c.otokens_prev := greatest(0, c.otokens_prev + d_tokens.output);
  end if;
  return c;
end $$;

-- Distinct keys in the one global lock order. Every call that locks counters locks them in this order, so calls
-- with overlapping scope sets wait for each other but never deadlock.
create function spendgate.sorted_keys(p_keys spendgate.counter_key[]) returns spendgate.counter_key[]
language plpgsql immutable as $$
begin
  return (
    select coalesce(array_agg(row(kind, id, model)::spendgate.counter_key
                              order by kind collate "C", id collate "C", model collate "C"), '{}')
    from (select distinct k.kind, k.id, k.model from unnest(p_keys) k) t);
end $$;

-- Locks the counters, creating those never seen before; returns the keys it created and the counters as locked.
-- Keys must come from sorted_keys().
create function spendgate.lock_counters(p_keys spendgate.counter_key[], p_at timestamptz,
                                        out created spendgate.counter_key[], out ctrs spendgate.counters[])
language plpgsql as $$
declare
  k spendgate.counter_key;
  c spendgate.counters;
begin
  created := '{}';
  ctrs := '{}';
  foreach k in array p_keys loop
    select * into c from spendgate.counters
     where kind = k.kind and id = k.id and model = k.model for update;
    if not found then
      -- A racing first use waits on this insert's unique-index entry, in the same order as the row locks.
      insert into spendgate.counters (kind, id, model, first_seen) values (k.kind, k.id, k.model, coalesce(p_at, now()))
      on conflict do nothing returning * into c;
      if found then
        created := created || k;
      else
        select * into c from spendgate.counters
         where kind = k.kind and id = k.id and model = k.model for update;
      end if;
    end if;
    ctrs := ctrs || c;
  end loop;
end $$;

-- The counters of p_keys and the limit that applies to each, in the keys' order: read once per state change (the
-- counters already locked), then passed along, so that no step looks a limit up again. One primary-key probe per key, never a join of
-- the keys to the table, whose plan could turn into a scan of every counter.
create function spendgate.counter_states(p_keys spendgate.counter_key[], out ctrs spendgate.counters[],
                                         out lims spendgate.scope_limit[])
language plpgsql stable as $$
declare
  k spendgate.counter_key;
  c spendgate.counters;
begin
  ctrs := '{}';
  foreach k in array p_keys loop
    select * into strict c from spendgate.counters where kind = k.kind and id = k.id and model = k.model;
    ctrs := ctrs || c;
  end loop;
  lims := spendgate.limits_of(p_keys);
end $$;

-- The limit that applies to each of p_keys, in their order.
create function spendgate.limits_of(p_keys spendgate.counter_key[]) returns spendgate.scope_limit[]
language plpgsql stable as $$
declare
  k spendgate.counter_key;
  lims spendgate.scope_limit[] := '{}';
begin
  foreach k in array p_keys loop
    lims := lims || spendgate.effective_limit(k.kind, k.id, k.model);
  end loop;
  return lims;
end $$;

-- One change applied to each of these counters, as charged() computes it; nothing is written (write_counters()).
create function spendgate.charged_states(p_ctrs spendgate.counters[], p_lims spendgate.scope_limit[], p_at timestamptz,
                                         d_spend numeric default 0, d_reserved numeric default 0,
                                         d_in_flight integer default 0, d_requests integer default 0,
                                         d_tokens spendgate.token_counts default row(0, 0, 0),
                                         p_token_window timestamptz default null)
returns spendgate.counters[] language plpgsql stable as $$
declare
  result spendgate.counters[] := '{}';
begin
  for i in 1 .. coalesce(cardinality(p_ctrs), 0) loop
    result := result || spendgate.charged(p_ctrs[i], p_lims[i], p_at, d_spend, d_reserved, d_in_flight, d_requests,
                                          d_tokens, p_token_window);
  end loop;
  return result;
end $$;

-- Stores these (locked) counters' states, all in one statement; returns how many rows it wrote.
create function spendgate.write_counters(p_ctrs spendgate.counters[]) returns integer
language plpgsql as $$
declare
  written integer;
begin
  update spendgate.counters c
     set period_start = n.period_start, spend = n.spend, reserved = n.reserved, in_flight = n.in_flight,
         window_start = n.window_start, requests_cur = n.requests_cur, requests_prev = n.requests_prev,
         tokens_cur = n.tokens_cur, tokens_prev = n.tokens_prev, itokens_cur = n.itokens_cur,
         itokens_prev = n.itokens_prev, otokens_cur = n.otokens_cur, otokens_prev = n.otokens_prev
    from unnest(p_ctrs) n
   where c.kind = n.kind and c.id = n.id and c.model = n.model;
  get diagnostics written = row_count;
  return written;
end $$;

-- What a counter shows a caller: its limit, its usage now, and what remains.
create function spendgate.usage_json(c spendgate.counters, l spendgate.scope_limit, p_at timestamptz)
returns jsonb language plpgsql stable as $$
declare
  requests numeric;
  tokens numeric;
  itokens numeric;
  otokens numeric;
begin
  c := spendgate.rolled(c, l, p_at);
  requests := spendgate.window_used(c.requests_prev, c.requests_cur, c.window_start, p_at);
  tokens := spendgate.window_used(c.tokens_prev, c.tokens_cur, c.window_start, p_at);
  itokens := spendgate.window_used(c.itokens_prev, c.itokens_cur, c.window_start, p_at);
  otokens := spendgate.window_used(c.otokens_prev, c.otokens_cur, c.window_start, p_at);
  return jsonb_build_object(
    'max_budget', spendgate.money(l.max_budget),
    'soft_budget', spendgate.money(l.soft_budget),
    'budget_duration', l.budget_duration,
    'budget_align', l.budget_align,
    'budget_anchor', case when l.budget_align = 'anchor' then spendgate.iso(l.budget_anchor) end,
    'admission', l.admission,
    'rpm', l.rpm, 'tpm', l.tpm, 'itpm', l.itpm, 'otpm', l.otpm, 'max_parallel', l.max_parallel,
    'spend', spendgate.money(c.spend),
    'reserved', spendgate.money(c.reserved),
    'remaining', case when l.max_budget is not null
                      then spendgate.money(greatest(l.max_budget - c.spend - c.reserved, 0)) end,
    'period_start', spendgate.iso(c.period_start),
    'resets_at', spendgate.iso(spendgate.next_reset(l.budget_duration, l.budget_align, l.budget_anchor, p_at)),
    'requests_in_window', ceil(requests)::bigint,
    'tokens_in_window', ceil(tokens)::bigint,
    'input_tokens_in_window', ceil(itokens)::bigint,
    'output_tokens_in_window', ceil(otokens)::bigint,
    'in_flight', c.in_flight,
    'requests_remaining', case when l.rpm is not null then greatest(floor(l.rpm - requests), 0)::bigint end,
    'tokens_remaining', case when l.tpm is not null then greatest(floor(l.tpm - tokens), 0)::bigint end,
    'input_tokens_remaining', case when l.itpm is not null then greatest(floor(l.itpm - itokens), 0)::bigint end,
    'output_tokens_remaining', case when l.otpm is not null then greatest(floor(l.otpm - otokens), 0)::bigint end,
    'requests_reset_seconds', spendgate.window_reset(c.requests_prev, c.requests_cur, c.window_start, p_at),
    'tokens_reset_seconds', spendgate.window_reset(c.tokens_prev, c.tokens_cur, c.window_start, p_at));
end $$;

-- A rate limit's refusal (rpm, tpm, itpm, otpm), as a 429 error; null when `need` more fits.
create function spendgate.rate_refusal(p_scope jsonb, p_name text, p_limit_type text, p_limit bigint,
                                       p_prev bigint, p_cur bigint, p_need bigint, p_window_start timestamptz,
                                       p_at timestamptz)
returns jsonb language plpgsql stable as $$
declare
  used numeric := spendgate.window_used(p_prev, p_cur, p_window_start, p_at);
  wait integer;
  unit text := case p_limit_type when 'rpm' then 'requests' when 'itpm' then 'input tokens'
                                 when 'otpm' then 'output tokens' else 'tokens' end;
begin
  if p_limit is null or used + p_need <= p_limit then return null; end if;
  wait := spendgate.window_wait(p_prev, p_cur, p_need, p_limit, p_window_start, p_at);
  return spendgate.error('rate_limit_exceeded',
    format('%s has used %s of its %s %s per %s s%s.', p_name, ceil(used), p_limit, unit, spendgate.rate_window(),
           case when p_limit_type = 'rpm' then '' else format(' and this request holds %s', p_need) end)
      || case when wait is not null then format(' Retry in %s s.', wait)
              when p_limit_type = 'rpm' then ' Its rpm is 0: no request can be admitted.'
              else ' The request alone is larger than the limit: lower max_tokens or shorten it.' end,
    jsonb_build_object('scope', p_scope, 'limit_type', p_limit_type, 'limit', p_limit, 'used', ceil(used)::bigint,
                       'requested', p_need))
    || jsonb_build_object('retry_after', wait);
end $$;

-- The first limit of one counter that a hold of p_cost and p_tokens would break, as a 429 error; else null.
-- Budgets are strict: the hold must fit whole, and a scope at or past its budget refuses everything (a 'fit'
-- budget's hold has already been shrunk to what remains, see reserve).
create function spendgate.refusal(c spendgate.counters, l spendgate.scope_limit, p_cost numeric,
                                  p_tokens spendgate.token_counts, p_at timestamptz)
returns jsonb language plpgsql stable as $$
declare
  -- How a refusal names the counter: built only where a limit is checked, as most calls refuse nothing.
  scope jsonb;
  name text;
  resets timestamptz;
  wait integer;
begin
  if l.max_budget is null and l.max_parallel is null and l.rpm is null and l.tpm is null and l.itpm is null
     and l.otpm is null then
    return null;
  end if;
  c := spendgate.rolled(c, l, p_at);
  if l.max_budget is not null
     and (c.spend + c.reserved >= l.max_budget or c.spend + c.reserved + p_cost > l.max_budget) then
    scope := spendgate.scope_ref(c.kind, c.id, c.model);
    name := spendgate.scope_name(c.kind, c.id, c.model);
    resets := spendgate.next_reset(l.budget_duration, l.budget_align, l.budget_anchor, p_at);
    return spendgate.error('budget_exceeded',
      format('The budget of %s cannot hold this reservation: spend %s + reserved %s + requested %s exceeds max_budget %s.%s',
             name, spendgate.money(c.spend), spendgate.money(c.reserved), spendgate.money(p_cost),
             spendgate.money(l.max_budget),
             case when resets is null then ' It does not reset; raise max_budget or wait for holds to finish.'
                  else ' It resets at ' || spendgate.iso(resets) || '.' end),
      jsonb_build_object('scope', scope, 'limit_type', 'max_budget', 'limit', spendgate.money(l.max_budget),
                         'used', spendgate.money(c.spend + c.reserved),
                         'max_budget', spendgate.money(l.max_budget),
                         'spend', spendgate.money(c.spend), 'reserved', spendgate.money(c.reserved),
                         'requested', spendgate.money(p_cost), 'budget_duration', l.budget_duration,
                         'period_start', spendgate.iso(c.period_start), 'resets_at', spendgate.iso(resets)))
      || jsonb_build_object('retry_after', ceil(extract(epoch from resets - p_at))::integer);
  end if;
  if l.max_parallel is not null and c.in_flight + 1 > l.max_parallel then
    scope := spendgate.scope_ref(c.kind, c.id, c.model);
    name := spendgate.scope_name(c.kind, c.id, c.model);
    wait := spendgate.parallel_wait(c, l.max_parallel, p_at);
    return spendgate.error('parallel_limit_exceeded',
      format('%s already has %s reservations held, its max_parallel; settle or release one first.',
             name, c.in_flight)
      || case when wait is not null then format(' Retry in %s s at the latest, when expiry frees a slot.', wait)
              when l.max_parallel = 0 then ' Its max_parallel is 0: no request can be admitted.' else '' end,
      jsonb_build_object('scope', scope, 'limit_type', 'max_parallel', 'limit', l.max_parallel,
                         'used', c.in_flight))
      || jsonb_build_object('retry_after', wait);
  end if;
  if l.rpm is null and l.tpm is null and l.itpm is null and l.otpm is null then
    return null;
  end if;
  scope := spendgate.scope_ref(c.kind, c.id, c.model);
  name := spendgate.scope_name(c.kind, c.id, c.model);
  return coalesce(
    spendgate.rate_refusal(scope, name, 'rpm', l.rpm, c.requests_prev, c.requests_cur, 1, c.window_start, p_at),
    spendgate.rate_refusal(scope, name, 'tpm', l.tpm, c.tokens_prev, c.tokens_cur, p_tokens.tokens, c.window_start, p_at),
    spendgate.rate_refusal(scope, name, 'itpm', l.itpm, c.itokens_prev, c.itokens_cur, p_tokens.input, c.window_start, p_at),
    spendgate.rate_refusal(scope, name, 'otpm', l.otpm, c.otokens_prev, c.otokens_cur, p_tokens.output, c.window_start, p_at));
end $$;
