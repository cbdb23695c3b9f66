-- Admission, second edition. Replaces reserve of 0003.

-- Reserve: p = {scopes: [{kind, id}], model, request_estimate, caller_estimate, ttl_seconds, idempotency_key,
-- request_hash, fallback_hold}. Checks and charges every counter all or nothing.
create or replace function spendgate.reserve(p jsonb, p_at timestamptz default null) returns jsonb
language plpgsql set lock_timeout = '5s' as $$
declare
  v_at timestamptz;
  v_key text := p ->> 'idempotency_key';
  v_existing spendgate.reservations;
  v_model text;
  v_entry jsonb;
  v_est jsonb;
  v_hold jsonb;
  v_cost numeric;
  v_tokens bigint;
  v_keys spendgate.counter_key[];
  v_created spendgate.counter_key[];
  v_refusal jsonb;
  v_id uuid := gen_random_uuid();
  v_row spendgate.reservations;
begin
  if v_key is not null then
    -- Attempts sharing a key run one after the other, so a retry racing its original replays it.
    perform pg_advisory_xact_lock(hashtextextended('spendgate.idempotency:' || v_key, 0));
    select * into v_existing from spendgate.reservations where idempotency_key = v_key;
    if found then
      if v_existing.request_hash is distinct from p ->> 'request_hash' then
        return spendgate.error('conflict',
          format('idempotency_key %s was already used with a different request body (reservation %s). Use a new key for a new request.',
                 v_key, v_existing.id),
          jsonb_build_object('idempotency_key', v_key, 'reservation_id', v_existing.id));
      end if;
      v_at := spendgate.clock(p_at);
      return spendgate.reservation_json(v_existing, v_at)
             || jsonb_build_object('replayed', true,
                                   'scopes', spendgate.scopes_json(spendgate.reservation_keys(v_existing.id), v_at));
    end if;
  end if;

  if p ->> 'model' is not null then
    select m.name, m.entry into v_model, v_entry from spendgate.find_model(p ->> 'model') m;
  end if;
  v_est := spendgate.estimate(v_entry, nullif(p -> 'request_estimate', 'null'), nullif(p -> 'caller_estimate', 'null'),
                              (p ->> 'fallback_hold')::numeric, (p ->> 'max_hold')::numeric);
  v_cost := (v_est ->> 'cost')::numeric;
  if v_cost is null then
    -- Only when unknown models are rejected (SPENDGATE_UNKNOWN_MODEL_HOLD=reject): otherwise the fallback holds.
    return spendgate.error('invalid_request',
      format('Model %s %s, and models without a price are rejected (SPENDGATE_UNKNOWN_MODEL_HOLD=reject). Add its prices with PUT /v1/models/{name} or give estimate.cost.',
             p ->> 'model', case when v_model is null then 'is not in the price table' else 'has no price for this request' end),
      jsonb_build_object('issues', jsonb_build_array(jsonb_build_object(
        'path', 'model', 'message', case when v_model is null then 'not in the price table' else 'no price for this request' end))));
  end if;

  v_keys := spendgate.sorted_keys(array(
    select row(s ->> 'kind', s ->> 'id', '')::spendgate.counter_key from jsonb_array_elements(p -> 'scopes') s
    union all
    select row(l.kind, l.id, l.model)::spendgate.counter_key
      from spendgate.limits l join jsonb_array_elements(p -> 'scopes') s
        on l.kind = s ->> 'kind' and l.id = s ->> 'id'
     where l.model = coalesce(v_model, p ->> 'model')));
  v_created := spendgate.lock_counters(v_keys, p_at);
  v_at := spendgate.clock(p_at);

  v_hold := spendgate.token_hold(v_est, v_keys);
  v_tokens := (v_hold ->> 'tokens')::bigint;
  v_refusal := spendgate.first_refusal(v_keys, v_cost, v_tokens, v_at);
  if v_refusal is not null and spendgate.expire_stale(v_keys, v_at) > 0 then
    v_refusal := spendgate.first_refusal(v_keys, v_cost, v_tokens, v_at);
  end if;
  if v_refusal is not null then
    v_refusal := v_refusal || jsonb_build_object('scopes', spendgate.scopes_json(v_keys, v_at));
    -- A refused reserve leaves no trace: not even the counters of scopes it named for the first time.
    delete from spendgate.counters c using unnest(v_created) k
     where c.kind = k.kind and c.id = k.id and c.model = k.model;
    return v_refusal;
  end if;

  insert into spendgate.reservations (id, status, model, model_entry, reserved_cost, reserved_tokens, estimate,
                                      idempotency_key, request_hash, window_start, created_at, expires_at)
  values (v_id, 'held', p ->> 'model', v_entry, v_cost, v_tokens,
          (v_est - 'cost' - 'caller_tokens' - 'output_cap_allowed')
          || jsonb_build_object('price_entry', v_model)
          || case when v_hold ? 'output_tokens_cap'
                  then jsonb_build_object('output_tokens_cap', (v_hold ->> 'output_tokens_cap')::bigint)
                  else '{}' end,
          v_key, p ->> 'request_hash', spendgate.window_start(v_at), v_at,
          v_at + make_interval(secs => (p ->> 'ttl_seconds')::integer))
  returning * into v_row;
  insert into spendgate.reservation_counters (reservation_id, kind, id, model)
  select v_id, k.kind, k.id, k.model from unnest(v_keys) k;
  update spendgate.counters c
     set (period_start, spend, reserved, in_flight, window_start,
          requests_cur, requests_prev, tokens_cur, tokens_prev) =
         (select n.period_start, n.spend, n.reserved, n.in_flight, n.window_start,
                 n.requests_cur, n.requests_prev, n.tokens_cur, n.tokens_prev
            from spendgate.changed(c, v_at, d_reserved => v_cost, d_in_flight => 1, d_requests => 1,
                                   d_tokens => v_tokens) n)
    from unnest(v_keys) k
   where c.kind = k.kind and c.id = k.id and c.model = k.model;

  return spendgate.reservation_json(v_row, v_at)
         || jsonb_build_object('scopes', spendgate.scopes_json(v_keys, v_at));
end $$;

