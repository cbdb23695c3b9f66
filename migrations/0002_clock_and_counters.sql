-- Time, money formatting, budget periods, rate windows and the counter arithmetic every state change shares.

-- The one clock. Every function takes `p_at` and reads the time only through this: production passes null and
-- gets the database's clock (serverless instances' clocks disagree; the database's is the only one); tests inject
-- a time so that periods, windows and expiry move without sleeping. A state change reads it once it holds its
-- locks, so that changes to one counter are stamped in the order they commit, even when one waited on a lock.
create function spendgate.clock(p_at timestamptz) returns timestamptz
language sql volatile as $$ select coalesce(p_at, clock_timestamp()) $$;

-- Money on the wire: exact decimal text with at least six places ("0.409600"), more when the value needs them.
create function spendgate.money(v numeric) returns text
language sql immutable as $$
  select case when v is null then null
              when scale(trim_scale(v)) <= 6 then round(v, 6)::text
              else trim_scale(v)::text end
$$;

create function spendgate.iso(t timestamptz) returns text
language sql immutable as $$ select to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

create function spendgate.error(p_type text, p_message text, p_details jsonb default '{}') returns jsonb
language sql immutable as $$
  select jsonb_build_object('error', jsonb_build_object('type', p_type, 'message', p_message) || p_details)
$$;

create function spendgate.scope_ref(p_kind text, p_id text, p_model text) returns jsonb
language sql immutable as $$
  select jsonb_build_object('kind', p_kind, 'id', p_id)
         || case when p_model <> '' then jsonb_build_object('model', p_model) else '{}' end
$$;

create function spendgate.scope_name(p_kind text, p_id text, p_model text) returns text
language sql immutable as $$
  select p_kind || ' ' || p_id || case when p_model <> '' then ' on model ' || p_model else '' end
$$;

-- Budget periods. Fixed lengths count from the limit's anchor; '1mo' is the calendar month in UTC. Fixed lengths
-- are in hours, never days: adding a day to a timestamptz follows the session's time zone across daylight saving.
create function spendgate.duration_interval(p_duration text) returns interval
language sql immutable as $$
  select case p_duration
    when '1h' then interval '1 hour' when '24h' then interval '24 hours' when '1d' then interval '24 hours'
    when '7d' then interval '168 hours'
    when '30d' then interval '720 hours' when '1mo' then interval '1 month' end
$$;

create function spendgate.period_start(p_duration text, p_anchor timestamptz, p_at timestamptz) returns timestamptz
language sql stable as $$
  select case
    when p_duration is null then null
    when p_duration = '1mo' then date_trunc('month', p_at, 'UTC')
    else p_anchor + (floor(extract(epoch from p_at - p_anchor)
                           / extract(epoch from spendgate.duration_interval(p_duration)))
                     * extract(epoch from spendgate.duration_interval(p_duration)))::float8 * interval '1 second'
  end
$$;

create function spendgate.period_end(p_duration text, p_start timestamptz) returns timestamptz
language sql immutable as $$
  select case when p_duration = '1mo' then ((p_start at time zone 'UTC') + interval '1 month') at time zone 'UTC'
              else p_start + spendgate.duration_interval(p_duration) end
$$;

-- Rate windows: fixed windows aligned to the epoch, read with the two-window weighted approximation
-- (used = prev × unexpired share of the window + cur), which assumes the previous window's requests were spread
-- evenly. It never counts less than the current window alone.
create function spendgate.rate_window() returns integer language sql immutable as $$ select 60 $$;

create function spendgate.window_start(p_at timestamptz) returns timestamptz
language sql immutable as $$
  select to_timestamp((floor(extract(epoch from p_at) / spendgate.rate_window()) * spendgate.rate_window())::float8)
$$;

-- Seconds into the window. A call whose time is before the window began (its transaction started earlier and
-- waited on a lock) counts as at the window's start: windows never move backwards.
create function spendgate.window_elapsed(p_window_start timestamptz, p_at timestamptz) returns numeric
language sql immutable as $$ select extract(epoch from greatest(p_at, p_window_start) - p_window_start) $$;

create function spendgate.window_used(p_prev bigint, p_cur bigint, p_window_start timestamptz, p_at timestamptz)
returns numeric language sql immutable as $$
  select p_prev * (spendgate.rate_window() - spendgate.window_elapsed(p_window_start, p_at)) / spendgate.rate_window()
         + p_cur
$$;

-- Seconds until `need` more fits under `lim`, assuming no other traffic; null when it never will (need > lim).
create function spendgate.window_wait(p_prev bigint, p_cur bigint, p_need bigint, p_lim bigint,
                                      p_window_start timestamptz, p_at timestamptz)
returns integer language plpgsql immutable as $$
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
returns integer language sql immutable as $$
  select ceil(case when p_cur > 0 then 2 * spendgate.rate_window() - spendgate.window_elapsed(p_window_start, p_at)
                   when p_prev > 0 then spendgate.rate_window() - spendgate.window_elapsed(p_window_start, p_at)
                   else 0 end)::integer
$$;

-- The limit that applies to one counter: a model limit takes the scope's budget_duration unless it has its own.
create function spendgate.effective_limit(p_kind text, p_id text, p_model text) returns spendgate.scope_limit
language plpgsql stable as $$
begin
  return (
    select row(l.max_budget, l.soft_budget,
               coalesce(l.budget_duration, s.budget_duration),
               case when l.budget_duration is not null then l.budget_anchor else s.budget_anchor end,
               l.rpm, l.tpm, l.max_parallel)::spendgate.scope_limit
    from (select) one
    left join spendgate.limits l on l.kind = p_kind and l.id = p_id and l.model = p_model
    left join spendgate.limits s on p_model <> '' and s.kind = p_kind and s.id = p_id and s.model = '');
end $$;

-- A counter as it stands at p_at: spend restarts when a new budget period has begun, and the rate windows slide.
-- Pure, so reads show the same numbers that the next write will store.
create function spendgate.rolled(c spendgate.counters, l spendgate.scope_limit, p_at timestamptz)
returns spendgate.counters language plpgsql stable as $$
declare
  p timestamptz := spendgate.period_start(l.budget_duration, l.budget_anchor, p_at);
  w timestamptz := spendgate.window_start(p_at);
begin
  if p is not null and (c.period_start is null or p > c.period_start) then
    c.period_start := p;
    c.spend := 0;
  end if;
  -- Only forwards: a call stamped before the current window (it waited on a lock) is counted in it.
  if c.window_start is null or w > c.window_start then
    if c.window_start = w - make_interval(secs => spendgate.rate_window()) then
      c.requests_prev := c.requests_cur;
      c.tokens_prev := c.tokens_cur;
    else
      c.requests_prev := 0;
      c.tokens_prev := 0;
    end if;
    c.requests_cur := 0;
    c.tokens_cur := 0;
    c.window_start := w;
  end if;
  return c;
end $$;

-- A counter after a change. Token changes go to the window the hold was counted in while that window still
-- counts (current or previous), and nowhere once it has slid out.
create function spendgate.changed(c spendgate.counters, p_at timestamptz,
                                  d_spend numeric default 0, d_reserved numeric default 0,
                                  d_in_flight integer default 0, d_requests integer default 0,
                                  d_tokens bigint default 0, p_token_window timestamptz default null)
returns spendgate.counters language plpgsql stable as $$
begin
  c := spendgate.rolled(c, spendgate.effective_limit(c.kind, c.id, c.model), p_at);
  c.spend := c.spend + d_spend;
  c.reserved := c.reserved + d_reserved;
  c.in_flight := c.in_flight + d_in_flight;
  c.requests_cur := c.requests_cur + d_requests;
  if d_tokens <> 0 then
    if p_token_window is null or p_token_window = c.window_start then
      c.tokens_cur := greatest(0, c.tokens_cur + d_tokens);
    elsif p_token_window = c.window_start - make_interval(secs => spendgate.rate_window()) then
      c.tokens_prev := greatest(0, c.tokens_prev + d_tokens);
    end if;
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

-- Locks the counters, creating those never seen before, and returns the keys it created. Keys must come from
-- sorted_keys().
create function spendgate.lock_counters(p_keys spendgate.counter_key[], p_at timestamptz)
returns spendgate.counter_key[] language plpgsql as $$
declare
  k spendgate.counter_key;
  created spendgate.counter_key[] := '{}';
begin
  foreach k in array p_keys loop
    perform 1 from spendgate.counters c
     where c.kind = k.kind and c.id = k.id and c.model = k.model for update;
    if not found then
      -- A racing first use waits on this insert's unique-index entry, in the same order as the row locks.
      insert into spendgate.counters (kind, id, model, first_seen) values (k.kind, k.id, k.model, coalesce(p_at, now()))
      on conflict do nothing;
      if found then
        created := created || k;
      else
        perform 1 from spendgate.counters c
         where c.kind = k.kind and c.id = k.id and c.model = k.model for update;
      end if;
    end if;
  end loop;
  return created;
end $$;

-- What a counter shows a caller: its limit, its usage now, and what remains.
create function spendgate.usage_json(c spendgate.counters, l spendgate.scope_limit, p_at timestamptz)
returns jsonb language plpgsql stable as $$
declare
  requests numeric;
  tokens numeric;
  resets timestamptz;
begin
  c := spendgate.rolled(c, l, p_at);
  requests := spendgate.window_used(c.requests_prev, c.requests_cur, c.window_start, p_at);
  tokens := spendgate.window_used(c.tokens_prev, c.tokens_cur, c.window_start, p_at);
  resets := spendgate.period_end(l.budget_duration, c.period_start);
  return jsonb_build_object(
    'max_budget', spendgate.money(l.max_budget),
    'soft_budget', spendgate.money(l.soft_budget),
    'budget_duration', l.budget_duration,
    'rpm', l.rpm, 'tpm', l.tpm, 'max_parallel', l.max_parallel,
    'spend', spendgate.money(c.spend),
    'reserved', spendgate.money(c.reserved),
    'remaining', case when l.max_budget is not null
                      then spendgate.money(greatest(l.max_budget - c.spend - c.reserved, 0)) end,
    'period_start', spendgate.iso(c.period_start),
    'resets_at', spendgate.iso(resets),
    'requests_in_window', ceil(requests)::bigint,
    'tokens_in_window', ceil(tokens)::bigint,
    'in_flight', c.in_flight,
    'requests_remaining', case when l.rpm is not null then greatest(floor(l.rpm - requests), 0)::bigint end,
    'tokens_remaining', case when l.tpm is not null then greatest(floor(l.tpm - tokens), 0)::bigint end,
    'requests_reset_seconds', spendgate.window_reset(c.requests_prev, c.requests_cur, c.window_start, p_at),
    'tokens_reset_seconds', spendgate.window_reset(c.tokens_prev, c.tokens_cur, c.window_start, p_at));
end $$;

-- The first limit of one counter that a hold of p_cost and p_tokens would break, as a 429 error; else null.
-- Budgets are strict: the hold must fit whole, and a scope at or past its budget refuses everything.
create function spendgate.refusal(c spendgate.counters, l spendgate.scope_limit, p_cost numeric,
                                  p_tokens bigint, p_at timestamptz)
returns jsonb language plpgsql stable as $$
declare
  scope jsonb := spendgate.scope_ref(c.kind, c.id, c.model);
  name text := spendgate.scope_name(c.kind, c.id, c.model);
  used numeric;
  resets timestamptz;
  wait integer;
begin
  c := spendgate.rolled(c, l, p_at);
  if l.max_budget is not null
     and (c.spend + c.reserved >= l.max_budget or c.spend + c.reserved + p_cost > l.max_budget) then
    resets := spendgate.period_end(l.budget_duration, c.period_start);
    return spendgate.error('budget_exceeded',
      format('The budget of %s cannot hold this reservation: spend %s + reserved %s + requested %s exceeds max_budget %s.%s',
             name, spendgate.money(c.spend), spendgate.money(c.reserved), spendgate.money(p_cost),
             spendgate.money(l.max_budget),
             case when resets is null then ' It does not reset; raise max_budget or wait for holds to finish.'
                  else ' It resets at ' || spendgate.iso(resets) || '.' end),
      jsonb_build_object('scope', scope, 'max_budget', spendgate.money(l.max_budget),
                         'spend', spendgate.money(c.spend), 'reserved', spendgate.money(c.reserved),
                         'requested', spendgate.money(p_cost), 'resets_at', spendgate.iso(resets)))
      || jsonb_build_object('retry_after', ceil(extract(epoch from resets - p_at))::integer);
  end if;
  if l.max_parallel is not null and c.in_flight + 1 > l.max_parallel then
    return spendgate.error('parallel_limit_exceeded',
      format('%s already has %s reservations held, its max_parallel; settle or release one first.',
             name, c.in_flight),
      jsonb_build_object('scope', scope, 'limit_type', 'max_parallel', 'limit', l.max_parallel,
                         'used', c.in_flight));
  end if;
  if l.rpm is not null then
    used := spendgate.window_used(c.requests_prev, c.requests_cur, c.window_start, p_at);
    if used + 1 > l.rpm then
      wait := spendgate.window_wait(c.requests_prev, c.requests_cur, 1, l.rpm, c.window_start, p_at);
      return spendgate.error('rate_limit_exceeded',
        format('%s has used %s of its %s requests per minute.', name, ceil(used), l.rpm)
          || case when wait is null then ' Its rpm is 0: no request can be admitted.'
                  else format(' Retry in %s s.', wait) end,
        jsonb_build_object('scope', scope, 'limit_type', 'rpm', 'limit', l.rpm, 'used', ceil(used)::bigint))
        || jsonb_build_object('retry_after', wait);
    end if;
  end if;
  if l.tpm is not null then
    used := spendgate.window_used(c.tokens_prev, c.tokens_cur, c.window_start, p_at);
    if used + p_tokens > l.tpm then
      wait := spendgate.window_wait(c.tokens_prev, c.tokens_cur, p_tokens, l.tpm, c.window_start, p_at);
      return spendgate.error('rate_limit_exceeded',
        format('%s has used %s of its %s tokens per minute and this request holds %s.',
               name, ceil(used), l.tpm, p_tokens)
          || case when wait is null then ' The request alone is larger than the limit: lower max_tokens or shorten it.'
                  else format(' Retry in %s s.', wait) end,
        jsonb_build_object('scope', scope, 'limit_type', 'tpm', 'limit', l.tpm, 'used', ceil(used)::bigint,
                           'requested', p_tokens))
        || jsonb_build_object('retry_after', wait);
    end if;
  end if;
  return null;
end $$;
