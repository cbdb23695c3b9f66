-- Limits, the price table and the audit.

-- The counter of a scope no reservation has charged yet.
create function spendgate.zero_counter(p_kind text, p_id text, p_model text, p_at timestamptz)
returns spendgate.counters language sql immutable as $$
  select row(p_kind, p_id, p_model, null, 0, 0, 0, null, 0, 0, 0, 0, p_at)::spendgate.counters
$$;

-- A counter as it will be once its stale holds are expired: reads show live usage even before a sweeper or the
-- next reserve on the scope has written the expiry.
create function spendgate.live(c spendgate.counters, l spendgate.scope_limit, p_at timestamptz)
returns spendgate.counters language plpgsql stable as $$
declare
  r record;
begin
  c := spendgate.rolled(c, l, p_at);
  for r in
    select h.reserved_cost, h.reserved_tokens, h.window_start
      from spendgate.reservations h
      join spendgate.reservation_counters rc on rc.reservation_id = h.id
     where h.status = 'held' and h.expires_at <= p_at
       and rc.kind = c.kind and rc.id = c.id and rc.model = c.model
  loop
    c.reserved := c.reserved - r.reserved_cost;
    c.in_flight := c.in_flight - 1;
    if r.window_start = c.window_start then
      c.tokens_cur := greatest(0, c.tokens_cur - r.reserved_tokens);
    elsif r.window_start = c.window_start - make_interval(secs => spendgate.rate_window()) then
      c.tokens_prev := greatest(0, c.tokens_prev - r.reserved_tokens);
    end if;
  end loop;
  return c;
end $$;

-- One scope's limit and live usage, with its model limits; null for a scope never limited nor named.
create function spendgate.limit_json(p_kind text, p_id text, p_at timestamptz) returns jsonb
language plpgsql stable as $$
begin
  return (
    with counter as (
      select c from spendgate.counters c where kind = p_kind and id = p_id and model = ''
    )
    select case when not exists (select from spendgate.limits where kind = p_kind and id = p_id)
                     and not exists (select from counter) then null
    else jsonb_build_object('kind', p_kind, 'id', p_id)
         || spendgate.usage_json(spendgate.live(coalesce((select c from counter), spendgate.zero_counter(p_kind, p_id, '', p_at)),
                                                spendgate.effective_limit(p_kind, p_id, ''), p_at),
                                 spendgate.effective_limit(p_kind, p_id, ''), p_at)
         || jsonb_build_object(
              'models', (select coalesce(jsonb_object_agg(l.model, spendgate.usage_json(
                                   spendgate.live(coalesce((select c from spendgate.counters c
                                                             where c.kind = p_kind and c.id = p_id and c.model = l.model),
                                                           spendgate.zero_counter(p_kind, p_id, l.model, p_at)),
                                                  spendgate.effective_limit(p_kind, p_id, l.model), p_at),
                                   spendgate.effective_limit(p_kind, p_id, l.model), p_at)), '{}')
                           from spendgate.limits l where l.kind = p_kind and l.id = p_id and l.model <> ''),
              'created_at', spendgate.iso((select min(created_at) from spendgate.limits where kind = p_kind and id = p_id)),
              'updated_at', spendgate.iso((select max(updated_at) from spendgate.limits where kind = p_kind and id = p_id)))
    end);
end $$;

-- Merges one limit row: keys present in p set their field, null clears it, absent keys stay as they were.
create function spendgate.merge_limit(p_kind text, p_id text, p_model text, p jsonb, p_at timestamptz)
returns void language plpgsql as $$
declare
  cur spendgate.limits;
  nxt spendgate.limits;
begin
  select * into cur from spendgate.limits where kind = p_kind and id = p_id and model = p_model for update;
  nxt := cur;
  nxt.kind := p_kind; nxt.id := p_id; nxt.model := p_model;
  nxt.created_at := coalesce(cur.created_at, p_at);
  nxt.updated_at := p_at;
  if p ? 'max_budget' then nxt.max_budget := (p ->> 'max_budget')::numeric; end if;
  if p ? 'soft_budget' then nxt.soft_budget := (p ->> 'soft_budget')::numeric; end if;
  if p ? 'rpm' then nxt.rpm := (p ->> 'rpm')::integer; end if;
  if p ? 'tpm' then nxt.tpm := (p ->> 'tpm')::bigint; end if;
  if p ? 'max_parallel' then nxt.max_parallel := (p ->> 'max_parallel')::integer; end if;
  if p ? 'budget_duration' then
    nxt.budget_duration := p ->> 'budget_duration';
    if nxt.budget_duration is distinct from cur.budget_duration then
      -- Arming a duration starts a clean period now; changing one keeps the current period's start and
      -- measures the new length from there (the period rolls over at once if that is already past).
      nxt.budget_anchor := case
        when nxt.budget_duration is null then null
        when cur.budget_duration is null then p_at
        else spendgate.period_start(cur.budget_duration, cur.budget_anchor, p_at) end;
    end if;
  end if;
  if p_model <> '' and num_nonnulls(nxt.max_budget, nxt.soft_budget, nxt.budget_duration, nxt.rpm, nxt.tpm,
                                    nxt.max_parallel) = 0 then
    -- A model limit with nothing left in it is gone. The scope's own row stays, fields null, so that the scope
    -- the caller just wrote to answers GET (DELETE is how a limit goes away).
    delete from spendgate.limits where kind = p_kind and id = p_id and model = p_model;
  else
    insert into spendgate.limits values (nxt.*)
    on conflict (kind, id, model) do update
      set max_budget = excluded.max_budget, soft_budget = excluded.soft_budget,
          budget_duration = excluded.budget_duration, budget_anchor = excluded.budget_anchor,
          rpm = excluded.rpm, tpm = excluded.tpm, max_parallel = excluded.max_parallel,
          updated_at = excluded.updated_at;
  end if;
end $$;

-- PUT /v1/limits/{kind}/{id}: p is the validated body; `models` maps a model to its own body, or null to remove.
create function spendgate.put_limit(p_kind text, p_id text, p jsonb, p_at timestamptz default null) returns jsonb
language plpgsql set lock_timeout = '5s' as $$
declare
  v_at timestamptz := spendgate.clock(p_at);
  m record;
begin
  -- Two writers of one scope's limits run one after the other (the rows may not exist yet to lock).
  perform pg_advisory_xact_lock(hashtextextended('spendgate.limit:' || p_kind || '/' || p_id, 0));
  perform spendgate.merge_limit(p_kind, p_id, '', p - 'models', v_at);
  if p ? 'models' then
    if jsonb_typeof(p -> 'models') = 'null' then
      delete from spendgate.limits where kind = p_kind and id = p_id and model <> '';
    else
      for m in select key, value from jsonb_each(p -> 'models') loop
        if jsonb_typeof(m.value) = 'null' then
          delete from spendgate.limits where kind = p_kind and id = p_id and model = m.key;
        else
          perform spendgate.merge_limit(p_kind, p_id, m.key, m.value, v_at);
        end if;
      end loop;
    end if;
  end if;
  return spendgate.limit_json(p_kind, p_id, v_at);
end $$;

create function spendgate.get_limit(p_kind text, p_id text, p_at timestamptz default null) returns jsonb
language plpgsql stable as $$
begin
  return (
    select coalesce(spendgate.limit_json(p_kind, p_id, spendgate.clock(p_at)),
                    spendgate.error('not_found',
                      format('No scope %s %s: it has no limit and no reservation has named it.', p_kind, p_id))));
end $$;

-- Every scope with a limit or a counter, in (kind, id) order after the cursor.
create function spendgate.list_limits(p_kind text, p_after_kind text, p_after_id text, p_count integer,
                                      p_at timestamptz default null)
returns jsonb language sql stable as $$
  with page as (
    select kind, id from (
      select kind, id from spendgate.limits union select kind, id from spendgate.counters) s
     where (p_kind is null or kind = p_kind)
       and (p_after_kind is null or (kind collate "C", id collate "C") > (p_after_kind collate "C", p_after_id collate "C"))
     order by kind collate "C", id collate "C"
     limit p_count + 1
  ), numbered as (
    select kind, id, row_number() over (order by kind collate "C", id collate "C") as n from page
  )
  select jsonb_build_object(
    'data', coalesce((select jsonb_agg(spendgate.limit_json(kind, id, spendgate.clock(p_at)) order by n)
                        from numbered where n <= p_count), '[]'),
    'next', (select jsonb_build_object('kind', kind, 'id', id) from numbered where n = p_count
              and exists (select from numbered where n = p_count + 1)))
$$;

create function spendgate.delete_limit(p_kind text, p_id text) returns jsonb
language plpgsql as $$
declare
  removed integer;
begin
  perform pg_advisory_xact_lock(hashtextextended('spendgate.limit:' || p_kind || '/' || p_id, 0));
  delete from spendgate.limits where kind = p_kind and id = p_id;
  get diagnostics removed = row_count;
  if removed = 0 then
    return spendgate.error('not_found', format('Scope %s %s has no limit to delete.', p_kind, p_id));
  end if;
  return jsonb_build_object('kind', p_kind, 'id', p_id, 'deleted', true);
end $$;

-- Price fields given as decimal strings are stored as JSON numbers (exact numerics in jsonb).
create function spendgate.normalized_entry(p_entry jsonb) returns jsonb
language sql immutable as $$
  select coalesce(jsonb_object_agg(key, case when jsonb_typeof(value) = 'string' and key like '%cost%'
                                             then to_jsonb((value #>> '{}')::numeric) else value end), '{}')
    from jsonb_each(p_entry)
$$;

create function spendgate.model_json(p_name text, p_entry jsonb, p_updated_at timestamptz) returns jsonb
language sql immutable as $$
  select jsonb_build_object('name', p_name) || spendgate.model_prices(p_entry)
         || jsonb_build_object('updated_at', spendgate.iso(p_updated_at))
$$;

create function spendgate.put_model(p_name text, p_entry jsonb, p_at timestamptz default null) returns jsonb
language sql as $$
  insert into spendgate.models as m (name, entry, updated_at)
  values (p_name, spendgate.normalized_entry(p_entry), spendgate.clock(p_at))
  on conflict (name) do update set entry = excluded.entry, updated_at = excluded.updated_at
  returning spendgate.model_json(m.name, m.entry, m.updated_at)
$$;

create function spendgate.get_model(p_name text) returns jsonb
language plpgsql stable as $$
begin
  return (
    select coalesce((select spendgate.model_json(m.name, m.entry, m.updated_at)
                       from spendgate.models m join spendgate.find_model(p_name) f on f.name = m.name),
                    spendgate.error('not_found', format('Model %s is not in the price table.', p_name))));
end $$;

-- POST /v1/models/import: p_entries maps names to validated entries; one statement, so all land or none.
create function spendgate.import_models(p_entries jsonb, p_at timestamptz default null) returns integer
language sql as $$
  with written as (
    insert into spendgate.models (name, entry, updated_at)
    select key, spendgate.normalized_entry(value), spendgate.clock(p_at) from jsonb_each(p_entries)
    on conflict (name) do update set entry = excluded.entry, updated_at = excluded.updated_at
    returning 1)
  select count(*)::integer from written
$$;

-- Recomputes every counter from the ledger in one snapshot: spend = the actual cost of settled reservations that
-- landed in the counter's current period; reserved and in_flight = the live holds.
create function spendgate.audit() returns jsonb
language sql stable as $$
  with held as (
    select rc.kind, rc.id, rc.model, sum(r.reserved_cost) as reserved, count(*) as in_flight
      from spendgate.reservation_counters rc join spendgate.reservations r on r.id = rc.reservation_id
     where r.status = 'held'
     group by rc.kind, rc.id, rc.model
  ), spent as (
    select rc.kind, rc.id, rc.model, rc.charged_period, sum(r.actual_cost) as spend
      from spendgate.reservation_counters rc join spendgate.reservations r on r.id = rc.reservation_id
     where r.status = 'settled'
     group by rc.kind, rc.id, rc.model, rc.charged_period
  ), compared as (
    select c.kind, c.id, c.model,
           c.spend, coalesce(s.spend, 0) as ledger_spend,
           c.reserved, coalesce(h.reserved, 0) as ledger_reserved,
           c.in_flight, coalesce(h.in_flight, 0) as ledger_in_flight
      from spendgate.counters c
      left join held h on h.kind = c.kind and h.id = c.id and h.model = c.model
      left join spent s on s.kind = c.kind and s.id = c.id and s.model = c.model
                       and s.charged_period is not distinct from c.period_start
  ), mismatches as (
    select spendgate.scope_ref(kind, id, model) || jsonb_build_object('field', field, 'counter', counter,
                                                                     'ledger', ledger) as m
      from compared, lateral (values ('spend', spendgate.money(spend), spendgate.money(ledger_spend)),
                                     ('reserved', spendgate.money(reserved), spendgate.money(ledger_reserved)),
                                     ('in_flight', in_flight::text, ledger_in_flight::text)) v(field, counter, ledger)
     where counter <> ledger
  )
  select jsonb_build_object('ok', not exists (select from mismatches),
                            'scopes_checked', (select count(*) from compared),
                            'mismatches', coalesce((select jsonb_agg(m) from mismatches), '[]'))
$$;
