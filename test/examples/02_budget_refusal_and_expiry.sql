-- A key with a $0.30 budget takes two holds of $0.15; a third does not fit.
select spendgate.put_limit('key', 'ex-2', '{"max_budget": "0.30"}', '2026-05-01T10:00:00Z') ->> 'max_budget' as max_budget;
select r ->> 'status' as status, r ->> 'reserved_cost' as reserved
  from generate_series(1, 2) i,
       spendgate.reserve(jsonb_build_object('scopes', '[{"kind": "key", "id": "ex-2"}]'::jsonb,
                                            'caller_estimate', '{"cost": "0.15"}'::jsonb, 'ttl_seconds', 60,
                                            'request_hash', 'h', 'idempotency_key', 'ex-2-' || i),
                         '2026-05-01T10:00:00Z') r;
select r -> 'error' ->> 'type' as error, r -> 'error' ->> 'spend' as spend, r -> 'error' ->> 'reserved' as reserved,
       r -> 'error' ->> 'requested' as requested
  from spendgate.reserve('{"scopes": [{"kind": "key", "id": "ex-2"}], "caller_estimate": {"cost": "0.01"},
                           "ttl_seconds": 60, "request_hash": "h"}', '2026-05-01T10:00:30Z') r;

-- Two minutes later nobody has settled: the reserve expires the stale holds itself and fits.
select r ->> 'status' as status, r -> 'scopes' -> 0 ->> 'reserved' as reserved
  from spendgate.reserve('{"scopes": [{"kind": "key", "id": "ex-2"}], "caller_estimate": {"cost": "0.01"},
                           "ttl_seconds": 60, "request_hash": "h"}', '2026-05-01T10:02:00Z') r;
select idempotency_key, status from spendgate.reservations where idempotency_key like 'ex-2-%' order by 1;

-- The late settle of an expired hold still charges its cost, once; the hold itself went back at expiry.
select r ->> 'status' as status, r ->> 'late' as late, r ->> 'released_cost' as released
  from spendgate.settle((select id from spendgate.reservations where idempotency_key = 'ex-2-1'),
                        '{"cost": "0.12", "settle_hash": "s"}', '2026-05-01T10:03:00Z') r;
select spend, reserved, in_flight from spendgate.counters where id = 'ex-2';
select spendgate.audit() ->> 'ok' as audit_ok;
