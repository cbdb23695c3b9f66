// The bench's floor server (bench/service/floor-server.ts): it answers reserves and settles as spendgate does, but
// with one row committed per transaction and none of the ledger's SQL. Should the ledger's statements change so that
// the floor no longer recognizes them, it would run them and measure spendgate itself: this catches that.
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFloorTable } from '../bench/service/database.ts';
import { httpDriver } from '../bench/service/drivers.ts';
import { type ServerProcess, startServer } from '../bench/service/server.ts';
import { freshDatabase, postgresUrl, type TestDatabase } from './support/databases.ts';

const tokens = { admin: 'floor-test-admin-token-0123456789', service: 'floor-test-service-token-0123456789' };

describe.skipIf(!postgresUrl)('the bench floor server', () => {
  let database: TestDatabase;
  let sql: postgres.Sql;
  let server: ServerProcess;

  // Started as the bench starts it (its output goes to the bench's server log).
  beforeAll(async () => {
    database = await freshDatabase('postgres');
    sql = postgres(database.url!, { max: 1, onnotice: () => {} });
    await createFloorTable(sql);
    server = await startServer(database.url!, 4, tokens, 'floor');
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await sql?.end();
    await database?.drop();
  });

  it('answers reserves and settles with one committed row per transaction and no ledger write', async () => {
    const driver = httpDriver(server.base, 8, tokens.service);
    try {
      // Eight at once, so that some share a transaction (run_batch) and some may go alone (reserve, settle).
      const ids = await Promise.all(Array.from({ length: 8 }, (_, n) => driver.reserve({ scopes: { key: `k-${n}` }, budget: 0 })));
      await Promise.all(ids.map((id) => driver.settle(id)));
      expect(new Set(ids).size).toBe(8);
    } finally {
      await driver.close();
    }
    const [floor] = await sql<{ transactions: number; calls: number }[]>`
      select count(*)::integer as transactions, coalesce(sum(calls), 0)::integer as calls from bench_floor.transactions`;
    expect(floor!.calls).toBe(16);
    expect(floor!.transactions).toBeGreaterThan(0);
    expect(floor!.transactions).toBeLessThanOrEqual(16);
    // Only the floor's own reserve, whose answers it copies, reached the ledger.
    const [ledger] = await sql<{ reservations: number; settled: number }[]>`
      select count(*)::integer as reservations, count(*) filter (where status = 'settled')::integer as settled
        from spendgate.reservations`;
    expect(ledger).toEqual({ reservations: 1, settled: 1 });
  }, 60_000);
});
