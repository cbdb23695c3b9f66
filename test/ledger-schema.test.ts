// The ledger's table refuses what the rules forbid, whoever writes to it: amounts and token counts below zero, a
// status outside the four, a transition outside the state machine, one idempotency key on two reservations. The SQL
// functions never try; these guards are for anything else that writes (a migration, an operator's fix by hand). And
// the ids that reserve makes are in time order. On PGlite and on the real server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, freshDatabase, type TestDatabase } from './support/databases.ts';

describe.each(backends)('the reservations table on %s', (backend) => {
  let database: TestDatabase;
  let id: string;
  const reserve = async (idempotencyKey: string | null = null) => {
    const [row] = await database.db.query<{ result: { id: string; status: string } }>(
      `select spendgate.reserve($1::text::jsonb) as result`,
      [JSON.stringify({ scopes: [{ kind: 'key', id: 'schema-guard' }], model: null, request_estimate: null,
                        caller_estimate: { cost: '0.01' }, ttl_seconds: 600, idempotency_key: idempotencyKey,
                        request_hash: 'h', fallback_hold: null, max_hold: null, tpm_count: 'total' })],
    );
    expect(row!.result.status).toBe('held');
    return row!.result.id;
  };
  beforeAll(async () => {
    database = await freshDatabase(backend);
    id = await reserve();
  });
  afterAll(async () => {
    await database?.drop();
  });

  /** The SQLSTATE of the statement's error, or 'ok'. */
  const outcome = async (text: string, params: unknown[] = []) => {
    try {
      await database.db.query(text, params);
      return 'ok';
    } catch (error) {
      return String((error as { code?: unknown }).code);
    }
  };

  it('refuses negative amounts and token counts (check_violation), and takes zero', async () => {
    for (const column of ['reserved_cost', 'reserved_tokens', 'reserved_input_tokens', 'reserved_output_tokens',
                          'actual_cost', 'actual_tokens', 'actual_input_tokens', 'actual_output_tokens']) {
      expect(await outcome(`update spendgate.reservations set ${column} = -1 where id = $1`, [id]), column).toBe('23514');
      expect(await outcome(`update spendgate.reservations set ${column} = 0 where id = $1`, [id]), column).toBe('ok');
    }
  });

  it('refuses a status outside held, settled, released and expired, and a move the state machine forbids', async () => {
    expect(await outcome(`update spendgate.reservations set status = 'cancelled' where id = $1`, [id])).toBe('23514');
    expect(await outcome(`update spendgate.reservations set status = 'released' where id = $1`, [id])).toBe('ok');
    expect(await outcome(`update spendgate.reservations set status = 'held' where id = $1`, [id])).toBe('SG409');
  });

  it('holds an idempotency key on one reservation at most, and any number of reservations without one', async () => {
    const keyed = await reserve('schema-guard-key');
    const keyless = [await reserve(), await reserve()];
    expect(await outcome(`update spendgate.reservations set idempotency_key = 'schema-guard-key' where id = $1`, [keyless[0]]))
      .toBe('23505');
    expect(await outcome(`update spendgate.reservations set idempotency_key = null where id = $1`, [keyed])).toBe('ok');
    const [row] = await database.db.query<{ keyless: number }>(
      `select count(*)::int as keyless from spendgate.reservations where idempotency_key is null and id = any ($1::uuid[])`,
      [[keyed, ...keyless]]);
    expect(row!.keyless).toBe(3);
  });

  it('makes ids in time order: UUIDs of version 7 whose first 48 bits are the real time in milliseconds', async () => {
    const made: Array<{ id: string; before: number; after: number }> = [];
    for (let i = 0; i < 5; i++) {
      const before = Date.now();
      const madeId = await reserve();
      made.push({ id: madeId, before, after: Date.now() });
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    for (const { id: madeId, before, after } of made) {
      expect(madeId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const millis = Number.parseInt(madeId.replaceAll('-', '').slice(0, 12), 16);
      // A second either way, for a database server whose clock is a little off this one.
      expect(millis).toBeGreaterThanOrEqual(before - 1000);
      expect(millis).toBeLessThanOrEqual(after + 1000);
    }
    const ids = made.map((m) => m.id);
    expect([...ids].sort()).toEqual(ids);
  });
});
