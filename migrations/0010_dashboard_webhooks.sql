-- The dashboard's one query, and webhook delivery from the events outbox.

-- Why the last delivery attempt of an event failed ("HTTP 500", "timeout"), for whoever looks at the outbox.
alter table spendgate.events add column last_error text;

-- Spend over time reads settled costs by hour; without this it would scan the whole ledger on every refresh.
create index reservations_by_settled_at on spendgate.reservations (settled_at) where settled_at is not null;

-- An event as GET /v1/events and the webhook body show it.
create function spendgate.event_json(e spendgate.events) returns jsonb
language sql stable as $$
  select jsonb_build_object('event_id', e.event_id, 'type', e.type, 'scope', spendgate.scope_ref(e.kind, e.id, e.model),
                            'period_start', spendgate.iso(e.period_start), 'created_at', spendgate.iso(e.created_at),
                            'details', e.details)
$$;

-- Claims up to p_count events due for delivery, oldest first: each gets attempts + 1 and a lease (next_attempt_at
-- moved p_lease_seconds on), in one statement. SKIP LOCKED makes deliverers running at once claim disjoint events;
-- the lease keeps a claimed event from being claimed again while its delivery is under way, and brings it back if
-- the deliverer dies before recording the outcome (so delivery is at least once, never lost).
create function spendgate.claim_events(p_count integer, p_lease_seconds integer, p_at timestamptz default null)
returns jsonb language plpgsql as $$
declare
  v_at timestamptz := spendgate.clock(p_at);
  v_claimed jsonb;
begin
  with due as (
    select event_id from spendgate.events
     where delivered_at is null and (next_attempt_at is null or next_attempt_at <= v_at)
     order by coalesce(next_attempt_at, created_at), created_at, event_id
     limit p_count
       for update skip locked
  ), claimed as (
    update spendgate.events e
       set attempts = e.attempts + 1, next_attempt_at = v_at + make_interval(secs => p_lease_seconds)
      from due where e.event_id = due.event_id
    returning e.*
  )
  select coalesce(jsonb_agg(jsonb_build_object('attempt', c.attempts, 'event', spendgate.event_json(c::spendgate.events))
                            order by c.created_at, c.event_id), '[]')
    into v_claimed
    from claimed c;
  return v_claimed;
end $$;

-- Records the outcome of claimed deliveries: [{event_id, delivered: true}] or [{event_id, delivered: false, error,
-- retry_in_seconds}], all in one statement. An event already delivered (by a deliverer whose lease had run out
-- meanwhile) stays delivered.
create function spendgate.record_deliveries(p_outcomes jsonb, p_at timestamptz default null) returns void
language plpgsql as $$
declare
  v_at timestamptz := spendgate.clock(p_at);
begin
  update spendgate.events e
     set delivered_at = case when (o ->> 'delivered')::boolean then v_at end,
         next_attempt_at = case when (o ->> 'delivered')::boolean then null
                                else v_at + make_interval(secs => (o ->> 'retry_in_seconds')::integer) end,
         last_error = case when (o ->> 'delivered')::boolean then null else left(o ->> 'error', 500) end
    from jsonb_array_elements(p_outcomes) o
   where e.event_id = (o ->> 'event_id')::uuid and e.delivered_at is null;
end $$;

-- How much of a part's max_budget is spent and reserved, in percent with one decimal (null without a positive
-- max_budget).
create function spendgate.utilization(p jsonb) returns jsonb
language sql stable as $$
  select jsonb_build_object(
    'spend_percent', case when (p ->> 'max_budget')::numeric > 0
                          then round((p ->> 'spend')::numeric * 100 / (p ->> 'max_budget')::numeric, 1)::text end,
    'reserved_percent', case when (p ->> 'max_budget')::numeric > 0
                             then round((p ->> 'reserved')::numeric * 100 / (p ->> 'max_budget')::numeric, 1)::text end)
$$;

-- Everything GET /v1/dashboard shows, in one snapshot at p_at:
--   scopes    the p_scopes scopes with the most spend + reserved in their current period, with limits, live usage
--             and budget windows, and how much of max_budget is spent and reserved (percent, one decimal);
--   holds     live holds: count, amount, and the oldest p_list of them;
--   refusals  refused reserves of the last 24 hours by type, and the latest p_list;
--   spend     settled cost per hour over the last p_hours hours (the current hour last), and its total;
--   events    the latest p_list events with their webhook delivery state.
create function spendgate.dashboard(p_hours integer, p_scopes integer, p_list integer, p_at timestamptz default null)
returns jsonb language plpgsql stable as $$
declare
  v_at timestamptz := spendgate.clock(p_at);
  v_first_hour timestamptz := date_trunc('hour', v_at, 'UTC') - make_interval(hours => p_hours - 1);
begin
  return jsonb_build_object(
    'at', spendgate.iso(v_at),
    'scopes', (
      with candidates as (
        -- Spend as it stands in the current period (the counter may still hold a past period's): the same rule as
        -- spendgate.rolled(), written as a join so that ranking every scope stays one pass over the counters.
        select c.kind, c.id
          from spendgate.counters c
          left join spendgate.limits l on l.kind = c.kind and l.id = c.id and l.model = ''
          cross join lateral (select spendgate.period_start(l.budget_duration, l.budget_align, l.budget_anchor, v_at) p) ps
         where c.model = ''
         order by case when ps.p is not null and (c.period_start is null or ps.p > c.period_start) then 0
                       else c.spend end + c.reserved desc, c.kind, c.id
         limit p_scopes
      ), shown as (
        select spendgate.limit_json(kind, id, v_at) j from candidates
      )
      select coalesce(jsonb_agg(j || spendgate.utilization(j)
                                  || jsonb_build_object('windows', (
                                       select coalesce(jsonb_agg(w || spendgate.utilization(w) order by n), '[]')
                                         from jsonb_array_elements(j -> 'windows') with ordinality w(w, n)))
                                order by (j ->> 'spend')::numeric + (j ->> 'reserved')::numeric desc,
                                         j ->> 'kind', j ->> 'id'), '[]')
        from shown),
    'scope_count', (select count(*) from spendgate.counters where model = ''),
    'holds', (
      select jsonb_build_object(
        'count', count(*),
        'amount', spendgate.money(coalesce(sum(r.reserved_cost), 0)),
        'oldest', coalesce((
          select jsonb_agg(jsonb_build_object(
                   'id', o.id, 'model', o.model, 'reserved_cost', spendgate.money(o.reserved_cost),
                   'created_at', spendgate.iso(o.created_at), 'expires_at', spendgate.iso(o.expires_at),
                   'scopes', (select coalesce(jsonb_agg(jsonb_build_object('kind', rc.kind, 'id', rc.id)
                                                        order by rc.kind collate "C", rc.id collate "C"), '[]')
                                from spendgate.reservation_counters rc
                               where rc.reservation_id = o.id and rc.model = ''))
                 order by o.created_at, o.id)
            from (select * from spendgate.reservations
                   where status = 'held' and expires_at > v_at
                   order by created_at, id limit p_list) o), '[]'))
        from spendgate.reservations r
       where r.status = 'held' and r.expires_at > v_at),
    'refusals', jsonb_build_object(
      'by_type', (select coalesce(jsonb_object_agg(type, n), '{}')
                    from (select type, count(*) n from spendgate.refusals
                           where created_at > v_at - interval '24 hours' and created_at <= v_at
                           group by type) t),
      'latest', (select coalesce(jsonb_agg(jsonb_build_object(
                                   'type', f.type, 'scope', f.scope, 'created_at', spendgate.iso(f.created_at),
                                   'message', f.answer -> 'error' ->> 'message')
                                 order by f.created_at desc, f.refusal_id), '[]')
                   from (select * from spendgate.refusals
                          where created_at > v_at - interval '24 hours' and created_at <= v_at
                          order by created_at desc, refusal_id limit p_list) f)),
    'spend', (
      select jsonb_agg(jsonb_build_object('hour', spendgate.iso(h.hour_start), 'cost', spendgate.money(coalesce(s.cost, 0)),
                                          'settled', coalesce(s.settled, 0))
                       order by h.hour_start)
        from generate_series(v_first_hour, date_trunc('hour', v_at, 'UTC'), interval '1 hour') as h(hour_start)
        left join (select date_trunc('hour', settled_at, 'UTC') as hour_start, sum(actual_cost) as cost, count(*) as settled
                     from spendgate.reservations
                    where settled_at >= v_first_hour and settled_at <= v_at
                    group by 1) s on s.hour_start = h.hour_start),
    'spend_total', (select spendgate.money(coalesce(sum(actual_cost), 0)) from spendgate.reservations
                     where settled_at >= v_first_hour and settled_at <= v_at),
    'events', (
      select coalesce(jsonb_agg(spendgate.event_json(e)
                                || jsonb_build_object('delivered_at', spendgate.iso(e.delivered_at),
                                                      'attempts', e.attempts,
                                                      'next_attempt_at', spendgate.iso(e.next_attempt_at),
                                                      'last_error', e.last_error)
                                order by e.created_at desc, e.event_id desc), '[]')
        from (select * from spendgate.events where created_at <= v_at
               order by created_at desc, event_id desc limit p_list) e),
    'undelivered_events', (select count(*) from spendgate.events where delivered_at is null));
end $$;
