-- A team with a $1 budget. Times are given explicitly (the last argument), as tests inject the clock.
select spendgate.put_limit('team', 'ex-1', '{"max_budget": "1.00"}', '2026-05-01T10:00:00Z') ->> 'remaining' as remaining;

-- Reserve a gpt-4o call with max_tokens 100 and 9 input tokens: 9 × 0.0000025 + 100 × 0.00001.
select r ->> 'status' as status, r ->> 'reserved_cost' as reserved_cost, r ->> 'reserved_tokens' as tokens,
       r -> 'scopes' -> 0 ->> 'remaining' as remaining
  from spendgate.reserve('{"scopes": [{"kind": "team", "id": "ex-1"}], "model": "gpt-4o",
                           "request_estimate": {"input_tokens": 9, "max_output_tokens": 100, "n": 1, "unsized_parts": 0},
                           "ttl_seconds": 600, "idempotency_key": "ex-1-a", "request_hash": "h1", "fallback_hold": "1.00"}',
                         '2026-05-01T10:00:01Z') r;

-- Settle from OpenAI usage: 40 prompt tokens (30 of them cached) and 50 completion tokens.
select r ->> 'status' as status, r ->> 'actual_cost' as actual_cost, r ->> 'released_cost' as released
  from spendgate.settle((select id from spendgate.reservations where idempotency_key = 'ex-1-a'),
                        '{"usage": {"input_tokens": 10, "cache_read_tokens": 30, "cache_creation_tokens": 0,
                                    "output_tokens": 50, "reasoning_tokens": 0},
                          "actual_tokens": 90, "settle_hash": "s1"}',
                        '2026-05-01T10:00:05Z') r;

-- The same settle again charges nothing more; a different one is refused.
select r ->> 'actual_cost' as actual_cost, r ->> 'replayed' as replayed
  from spendgate.settle((select id from spendgate.reservations where idempotency_key = 'ex-1-a'),
                        '{"cost": "0.5", "settle_hash": "s1"}', '2026-05-01T10:00:06Z') r;
select r -> 'error' ->> 'type' as error
  from spendgate.settle((select id from spendgate.reservations where idempotency_key = 'ex-1-a'),
                        '{"cost": "0.5", "settle_hash": "s2"}', '2026-05-01T10:00:07Z') r;

select kind, id, spend, reserved, in_flight from spendgate.counters where id = 'ex-1';
select spendgate.audit() ->> 'ok' as audit_ok;
