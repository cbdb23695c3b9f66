-- Limits, the price table and the audit.

-- The counter of a scope no reservation has charged yet.
create function spendgate.zero_counter(p_kind text, p_id text, p_model text, p_at timestamptz)
returns spendgate.counters language sql immutable as $$
  select row(p_kind, p_id, p_model, null, 0, 0, 0, null, 0, 0, 0, 0, 0, 0, 0, 0, p_at)::spendgate.counters
$$;

-- A counter as it will be once its stale holds are expired: reads show live usage even before a sweeper or the
-- next reserve on the scope has written the expiry.
create function spendgate.live(c spendgate.counters, l spendgate.scope_limit, p_at timestamptz)
returns spendgate.counters language plpgsql stable as $$
declare
  r spendgate.reservations;
begin
  c := spendgate.rolled(c, l, p_at);
  for r in
    select h.* from spendgate.reservations h
      join spendgate.reservation_counters rc on rc.reservation_id = h.id
     where h.status = 'held' and h.expires_at <= p_at
       and rc.kind = c.kind and rc.id = c.id and rc.model = c.model
  loop
    c := spendgate.charged(c, l, p_at, d_reserved => -r.reserved_cost, d_in_flight => -1,
                           d_tokens => spendgate.held_tokens_back(r), p_token_window => r.window_start);
  end loop;
  return c;
end $$;

-- One part of a scope (the scope, a model limit, a budget window) with its limit and live usage.
create function spendgate.part_json(p_kind text, p_id text, p_model text, p_at timestamptz) returns jsonb
language plpgsql stable as $$
declare
  l spendgate.scope_limit := spendgate.effective_limit(p_kind, p_id, p_model);
begin
  return spendgate.usage_json(
    spendgate.live(coalesce((select c from spendgate.counters c where c.kind = p_kind and c.id = p_id and c.model = p_model),
                            spendgate.zero_counter(p_kind, p_id, p_model, p_at)), l, p_at),
    l, p_at);
end $$;

-- One scope's limit and live usage, with its model limits and budget windows; null for a scope never limited nor
-- named.
create function spendgate.limit_json(p_kind text, p_id text, p_at timestamptz) returns jsonb
language plpgsql stable as $$
begin
  if not exists (select from spendgate.limits where kind = p_kind and id = p_id)
     and not exists (select from spendgate.counters where kind = p_kind and id = p_id and model = '') then
    return null;
  end if;
  return jsonb_build_object('kind', p_kind, 'id', p_id)
    || spendgate.part_json(p_kind, p_id, '', p_at)
    || jsonb_build_object(
         'windows', (select coalesce(jsonb_agg(spendgate.part_json(p_kind, p_id, l.model, p_at)
                                               order by substr(l.model, 2)::integer), '[]')
                       from spendgate.limits l where l.kind = p_kind and l.id = p_id and l.model like '@%'),
         'models', (select coalesce(jsonb_object_agg(l.model, spendgate.part_json(p_kind, p_id, l.model, p_at)), '{}')
                      from spendgate.limits l where l.kind = p_kind and l.id = p_id and l.model <> ''
                       and l.model not like '@%'),
         'created_at', spendgate.iso((select min(created_at) from spendgate.limits where kind = p_kind and id = p_id)),
         'updated_at', spendgate.iso((select max(updated_at) from spendgate.limits where kind = p_kind and id = p_id)));
end $$;

-- Merges one limit row: keys present in p set their field, null clears it, absent keys stay as they were.
-- A window's body uses the short names (align, anchor); a scope's the long ones (budget_align, budget_anchor).
create function spendgate.merge_limit(p_kind text, p_id text, p_model text, p jsonb, p_at timestamptz)
returns void language plpgsql as $$
declare
  cur spendgate.limits;
  nxt spendgate.limits;
  align text := coalesce(p ->> 'budget_align', p ->> 'align');
  anchor timestamptz := coalesce(p ->> 'budget_anchor', p ->> 'anchor')::timestamptz;
  period_changed boolean;
begin
  select * into cur from spendgate.limits where kind = p_kind and id = p_id and model = p_model for update;
  nxt := cur;
  nxt.kind := p_kind; nxt.id := p_id; nxt.model := p_model;
  nxt.created_at := coalesce(cur.created_at, p_at);
  nxt.updated_at := p_at;
  nxt.admission := coalesce(cur.admission, 'strict');
  if p ? 'max_budget' then nxt.max_budget := (p ->> 'max_budget')::numeric; end if;
  if p ? 'soft_budget' then nxt.soft_budget := (p ->> 'soft_budget')::numeric; end if;
  if p ? 'rpm' then nxt.rpm := (p ->> 'rpm')::integer; end if;
  if p ? 'tpm' then nxt.tpm := (p ->> 'tpm')::bigint; end if;
  if p ? 'itpm' then nxt.itpm := (p ->> 'itpm')::bigint; end if;
  if p ? 'otpm' then nxt.otpm := (p ->> 'otpm')::bigint; end if;
  if p ? 'max_parallel' then nxt.max_parallel := (p ->> 'max_parallel')::integer; end if;
  if p ? 'admission' then nxt.admission := coalesce(p ->> 'admission', 'strict'); end if;
  if p ? 'budget_duration' then nxt.budget_duration := p ->> 'budget_duration'; end if;
  -- The layout: an anchor given means 'anchor'; else the align given; else as it was, unless the duration changed
  -- or the layout was cleared (null): then the default, rolling, except for a month, which is the calendar month.
  if anchor is not null then
    nxt.budget_align := 'anchor';
  elsif align is not null then
    nxt.budget_align := align;
  elsif p ? 'budget_align' or p ? 'align' or p ? 'budget_anchor' or p ? 'anchor'
        or nxt.budget_duration is distinct from cur.budget_duration then
    nxt.budget_align := case when nxt.budget_duration = '1mo' then 'calendar' else 'rolling' end;
  end if;
  if nxt.budget_duration is null then nxt.budget_align := null; end if;
  if nxt.budget_align = 'calendar' and nxt.budget_duration = '30d' then
    -- Only a partial body gets here (budget_align alone on a 30d limit): calendar days would reset it daily.
    raise exception '30d has no calendar boundaries; use 1mo for the calendar month' using errcode = 'SG400',
      detail = case when p_model = '' then 'budget_align' when p_model like '@%' then 'windows.' || (substr(p_model, 2)::integer - 1) || '.align'
                    else 'models.' || p_model || '.budget_align' end;
  end if;
  period_changed := nxt.budget_duration is distinct from cur.budget_duration
                    or nxt.budget_align is distinct from cur.budget_align
                    or (nxt.budget_align = 'anchor' and anchor is distinct from cur.budget_anchor);
  if period_changed then
    -- Arming a duration starts a clean period now; changing one keeps the current period's start and lays the
    -- new periods from there (the period rolls over at once if that is already past). An anchor or a calendar
    -- layout is used as given.
    nxt.budget_anchor := case
      when nxt.budget_duration is null or nxt.budget_align = 'calendar' then null
      when nxt.budget_align = 'anchor' then anchor
      when cur.budget_duration is null then p_at
      else spendgate.period_start(cur.budget_duration, cur.budget_align, cur.budget_anchor, p_at) end;
  end if;
  if cur.budget_duration is null and nxt.budget_duration is not null then
    -- Arming a duration starts a clean period now, whatever the layout: the first period runs from this instant
    -- to the layout's next boundary. Spend charged before stays in the period it was charged to (the audit finds
    -- it there); the counters start this one at 0. Model limits that follow the scope's period start with it.
    update spendgate.counters c set period_start = p_at, spend = 0
     where c.kind = p_kind and c.id = p_id
       and (c.model = p_model
            or (p_model = '' and c.model <> '' and c.model not like '@%'
                and not exists (select from spendgate.limits m where m.kind = p_kind and m.id = p_id
                                   and m.model = c.model and m.budget_duration is not null)));
  end if;
  if p_model <> '' and num_nonnulls(nxt.max_budget, nxt.soft_budget, nxt.budget_duration, nxt.rpm, nxt.tpm,
                                    nxt.itpm, nxt.otpm, nxt.max_parallel) = 0 then
    -- A model limit with nothing left in it is gone. The scope's own row stays, fields null, so that the scope
    -- the caller just wrote to answers GET (DELETE is how a limit goes away).
    delete from spendgate.limits where kind = p_kind and id = p_id and model = p_model;
  else
    insert into spendgate.limits values (nxt.*)
    on conflict (kind, id, model) do update
      set max_budget = excluded.max_budget, soft_budget = excluded.soft_budget,
          budget_duration = excluded.budget_duration, budget_align = excluded.budget_align,
          budget_anchor = excluded.budget_anchor, admission = excluded.admission,
          rpm = excluded.rpm, tpm = excluded.tpm, itpm = excluded.itpm, otpm = excluded.otpm,
          max_parallel = excluded.max_parallel, updated_at = excluded.updated_at;
  end if;
end $$;

-- PUT /v1/limits/{kind}/{id}: p is the validated body; `models` maps a model to its own body, or null to remove;
-- `windows` replaces the scope's budget windows (by position: window n keeps its period while its layout stays).
create function spendgate.put_limit(p_kind text, p_id text, p jsonb, p_at timestamptz default null) returns jsonb
language plpgsql set lock_timeout = '5s' as $$
declare
  v_at timestamptz := spendgate.clock(p_at);
  m record;
  n integer;
  v_path text;
  v_message text;
begin
  -- Two writers of one scope's limits run one after the other (the rows may not exist yet to lock).
  perform pg_advisory_xact_lock(hashtextextended('spendgate.limit:' || p_kind || '/' || p_id, 0));
  perform spendgate.merge_limit(p_kind, p_id, '', p - 'models' - 'windows', v_at);
  if p ? 'models' then
    if jsonb_typeof(p -> 'models') = 'null' then
      delete from spendgate.limits where kind = p_kind and id = p_id and model <> '' and model not like '@%';
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
  if p ? 'windows' then
    n := coalesce(jsonb_array_length(nullif(p -> 'windows', 'null')), 0);
    delete from spendgate.limits where kind = p_kind and id = p_id and model like '@%'
       and substr(model, 2)::integer > n;
    for m in select ord, value from jsonb_array_elements(nullif(p -> 'windows', 'null')) with ordinality x(value, ord) loop
      -- A window is given whole: fields it leaves out are cleared.
      perform spendgate.merge_limit(p_kind, p_id, '@' || m.ord,
        jsonb_build_object('soft_budget', null, 'align', null, 'anchor', null) || m.value, v_at);
    end loop;
  end if;
  return spendgate.limit_json(p_kind, p_id, v_at);
exception when sqlstate 'SG400' then
  -- A layout merge_limit refused: nothing of this PUT is written.
  get stacked diagnostics v_message = message_text, v_path = pg_exception_detail;
  return spendgate.error('invalid_request', format('Invalid request: %s: %s', v_path, v_message),
    jsonb_build_object('issues', jsonb_build_array(jsonb_build_object('path', v_path, 'message', v_message))));
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
language sql stable as $$
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
-- landed in the counter's current period; reserved and in_flight = the live holds; the rate windows = the requests
-- and tokens of the reservations counted in the counter's current and previous window (held: the tokens held;
-- settled: the actual tokens; released or expired: none, they were given back).
-- Changing rate_window_seconds realigns the windows, and the two windows around the change may then disagree.
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
  ), windowed as (
    select rc.kind, rc.id, rc.model, r.window_start, count(*) as requests,
           sum(case r.status when 'held' then r.reserved_tokens when 'settled' then r.actual_tokens else 0 end) as tokens,
           sum(case r.status when 'held' then r.reserved_input_tokens
                             when 'settled' then r.actual_input_tokens else 0 end) as itokens,
           sum(case r.status when 'held' then r.reserved_output_tokens
                             when 'settled' then r.actual_output_tokens else 0 end) as otokens
      from spendgate.reservation_counters rc join spendgate.reservations r on r.id = rc.reservation_id
     group by rc.kind, rc.id, rc.model, r.window_start
  ), compared as (
    select c.kind, c.id, c.model,
           c.spend, coalesce(s.spend, 0) as ledger_spend,
           c.reserved, coalesce(h.reserved, 0) as ledger_reserved,
           c.in_flight, coalesce(h.in_flight, 0) as ledger_in_flight,
           c.requests_cur, coalesce(wc.requests, 0) as ledger_requests_cur,
           c.requests_prev, coalesce(wp.requests, 0) as ledger_requests_prev,
           c.tokens_cur, coalesce(wc.tokens, 0) as ledger_tokens_cur,
           c.tokens_prev, coalesce(wp.tokens, 0) as ledger_tokens_prev,
           c.itokens_cur, coalesce(wc.itokens, 0) as ledger_itokens_cur,
           c.itokens_prev, coalesce(wp.itokens, 0) as ledger_itokens_prev,
           c.otokens_cur, coalesce(wc.otokens, 0) as ledger_otokens_cur,
           c.otokens_prev, coalesce(wp.otokens, 0) as ledger_otokens_prev
      from spendgate.counters c
      left join held h on h.kind = c.kind and h.id = c.id and h.model = c.model
      left join spent s on s.kind = c.kind and s.id = c.id and s.model = c.model
                       and s.charged_period is not distinct from c.period_start
      left join windowed wc on wc.kind = c.kind and wc.id = c.id and wc.model = c.model
                           and wc.window_start = c.window_start
      left join windowed wp on wp.kind = c.kind and wp.id = c.id and wp.model = c.model
                           and wp.window_start = c.window_start - make_interval(secs => spendgate.rate_window())
  ), mismatches as (
    select spendgate.scope_ref(kind, id, model) || jsonb_build_object('field', field, 'counter', counter,
                                                                     'ledger', ledger) as m
      from compared, lateral (values ('spend', spendgate.money(spend), spendgate.money(ledger_spend)),
                                     ('reserved', spendgate.money(reserved), spendgate.money(ledger_reserved)),
                                     ('in_flight', in_flight::text, ledger_in_flight::text),
                                     ('requests_cur', requests_cur::text, ledger_requests_cur::text),
                                     ('requests_prev', requests_prev::text, ledger_requests_prev::text),
                                     ('tokens_cur', tokens_cur::text, ledger_tokens_cur::text),
                                     ('tokens_prev', tokens_prev::text, ledger_tokens_prev::text),
                                     ('input_tokens_cur', itokens_cur::text, ledger_itokens_cur::text),
                                     ('input_tokens_prev', itokens_prev::text, ledger_itokens_prev::text),
                                     ('output_tokens_cur', otokens_cur::text, ledger_otokens_cur::text),
                                     ('output_tokens_prev', otokens_prev::text, ledger_otokens_prev::text)
                             ) v(field, counter, ledger)
     where counter <> ledger
  )
  select jsonb_build_object('ok', not exists (select from mismatches),
                            'scopes_checked', (select count(*) from compared),
                            'mismatches', coalesce((select jsonb_agg(m) from mismatches), '[]'))
$$;

-- GET /v1/events: newest first, p_count at most, after the cursor (created_at, event_id) of the last one seen.
create function spendgate.list_events(p_type text, p_kind text, p_id text, p_before_at timestamptz,
                                      p_before_id uuid, p_count integer)
returns jsonb language sql stable as $$
  with page as (
    select e.*, row_number() over (order by e.created_at desc, e.event_id desc) as n
      from spendgate.events e
     where (p_type is null or e.type = p_type)
       and (p_kind is null or e.kind = p_kind) and (p_id is null or e.id = p_id)
       and (p_before_at is null or (e.created_at, e.event_id) < (p_before_at, p_before_id))
     order by e.created_at desc, e.event_id desc
     limit p_count + 1
  )
  select jsonb_build_object(
    'data', coalesce((select jsonb_agg(jsonb_build_object(
                        'event_id', event_id, 'type', type, 'scope', spendgate.scope_ref(kind, id, model),
                        'period_start', spendgate.iso(period_start), 'created_at', spendgate.iso(created_at),
                        'details', details) order by n)
                      from page where n <= p_count), '[]'),
    'next', (select jsonb_build_object('created_at', spendgate.iso(created_at), 'event_id', event_id)
               from page where n = p_count and exists (select from page where n = p_count + 1)))
$$;

-- Sets what every instance must agree on (SPENDGATE_RATE_WINDOW_SECONDS), when the deploy step is given it.
create function spendgate.configure(p_rate_window_seconds integer) returns void
language sql as $$
  update spendgate.settings set rate_window_seconds = coalesce(p_rate_window_seconds, rate_window_seconds)
$$;
