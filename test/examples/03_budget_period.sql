-- A daily budget: the period counts from when the duration was armed; spend restarts at the boundary, lazily.
select l ->> 'period_start' as period_start, l ->> 'resets_at' as resets_at
  from spendgate.put_limit('org', 'ex-3', '{"max_budget": "2", "budget_duration": "1d"}', '2026-05-01T09:30:00Z') l;

-- A hold made on day 1 and settled on day 2 is charged to day 2, the period it settles in.
select r ->> 'reserved_cost' as reserved
  from spendgate.reserve('{"scopes": [{"kind": "org", "id": "ex-3"}], "caller_estimate": {"cost": "1.5"},
                           "ttl_seconds": 86400, "idempotency_key": "ex-3-a", "request_hash": "h"}',
                         '2026-05-02T09:00:00Z') r;
select l ->> 'spend' as spend, l ->> 'reserved' as reserved, l ->> 'resets_at' as resets_at
  from spendgate.get_limit('org', 'ex-3', '2026-05-02T09:29:59Z') l;
select r ->> 'actual_cost' as actual
  from spendgate.settle((select id from spendgate.reservations where idempotency_key = 'ex-3-a'),
                        '{"cost": "1.2", "settle_hash": "s"}', '2026-05-02T09:45:00Z') r;
select l ->> 'period_start' as period_start, l ->> 'spend' as spend, l ->> 'reserved' as reserved
  from spendgate.get_limit('org', 'ex-3', '2026-05-02T10:00:00Z') l;
select l ->> 'spend' as spend from spendgate.get_limit('org', 'ex-3', '2026-05-03T09:30:00Z') l;
select spendgate.audit() ->> 'ok' as audit_ok;
