// migrations/0006_sweeper_cron.sql: where pg_cron can be had, the sweeper is scheduled inside the database and
// pg_cron really runs it; everywhere else the migration changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMigrations } from '../functions/node/migrations.ts';
import type { Database } from '../lib/db.ts';
import { postgresDatabase } from '../lib/db/postgres.ts';
import { migrate } from '../lib/migrate.ts';
import { backends, freshDatabase } from './support/databases.ts';
import { eventually } from './support/eventually.ts';
import { type Cluster, findPostgres, startCluster } from './support/throwaway-cluster.ts';

const migrationName = '0006_sweeper_cron.sql';
const cronSchemaCount = async (db: Database) =>
  (await db.query<{ n: number }>(`select count(*)::int as n from pg_namespace where nspname = 'cron'`))[0]!.n;

describe.each(backends)('where pg_cron cannot be had (%s)', (backend) => {
  it('the migration is applied and changes nothing', async () => {
    const database = await freshDatabase(backend);
    try {
      const applied = await database.db.query<{ name: string }>('select name from spendgate.schema_migrations where name = $1', [migrationName]);
      expect(applied).toHaveLength(1);
      expect(await cronSchemaCount(database.db)).toBe(0);
    } finally {
      await database.drop();
    }
  });
});

const found = findPostgres(['pg_cron']);
const missing = 'missing' in found ? found.missing : null;

describe.skipIf(missing !== null)(`on a throwaway cluster with pg_cron preloaded${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let cluster: Cluster;
  let db: Database;

  beforeAll(async () => {
    if ('missing' in found) return;
    cluster = await startCluster(found.bin, {
      shared_preload_libraries: "'pg_cron'",
      'cron.database_name': "'postgres'",
      // Jobs run in background workers: no connection back over the network, no password.
      'cron.use_background_workers': 'on',
      max_worker_processes: '16',
    });
    db = postgresDatabase(cluster.url('postgres'), { max: 2 });
    expect(await migrate(db, readMigrations())).toContain(migrationName);
  }, 120_000);

  afterAll(async () => {
    await db?.close();
    await cluster?.stop();
  });

  it('schedules a sweeper pass (spendgate.sweep_due) every minute, in this database, as the role that migrated', async () => {
    const jobs = await db.query(`select jobname, schedule, command, database, username, active from cron.job`);
    expect(jobs).toEqual([
      { jobname: 'spendgate-sweep', schedule: '* * * * *', command: 'call spendgate.sweep_due()', database: 'postgres', username: 'postgres', active: true },
    ]);
  });

  it('pg_cron runs it: holds that expired an hour ago are swept within the minute, with no call from outside', async () => {
    const [made] = await db.query<{ ids: string[] }>(
      `select array_agg(r ->> 'id') as ids from (
         select spendgate.reserve(jsonb_build_object(
           'scopes', jsonb_build_array(jsonb_build_object('kind', 'key', 'id', 'cron-' || (i % 3))),
           'model', null, 'request_estimate', null, 'caller_estimate', jsonb_build_object('cost', '0.25'),
           'ttl_seconds', 60, 'idempotency_key', null, 'request_hash', md5(i::text), 'fallback_hold', '1.00'),
           now() - interval '1 hour') as r
         from generate_series(1, 250) i) made`,
    );
    expect(made!.ids).toHaveLength(250);
    const stillHeld = async () =>
      (await db.query<{ n: number }>(`select count(*)::int as n from spendgate.reservations where id = any($1::uuid[]) and status = 'held'`, [made!.ids]))[0]!.n;
    expect(await stillHeld()).toBe(250);

    // The job fires at the next minute boundary; one run sweeps all 250, in three batches each committed on its own.
    await eventually('pg_cron has expired the 250 stale holds', async () => (await stillHeld()) === 0, 90);
    // pg_cron records a run's outcome in a transaction of its own after the run's last commit: wait for it.
    const runs = () => db.query<{ status: string }>(
      `select d.status from cron.job_run_details d join cron.job j using (jobid)
        where j.jobname = 'spendgate-sweep' order by d.start_time`,
    );
    await eventually('pg_cron has recorded the run', async () => ['succeeded', 'failed'].includes((await runs())[0]?.status ?? ''), 30);
    expect((await runs())[0]!.status).toBe('succeeded');
    const [audit] = await db.query<{ result: { ok: boolean } }>('select spendgate.audit() as result');
    expect(audit!.result.ok).toBe(true);
    // Every hold went back to its scope.
    const [usage] = await db.query<{ none: boolean }>(`select sum(reserved) = 0 and sum(in_flight) = 0 as none from spendgate.counters where id like 'cron-%'`);
    expect(usage!.none).toBe(true);
  }, 120_000);

  it('running the migration again replaces the job, never adds a second', async () => {
    const migration = readMigrations().find((m) => m.name === migrationName)!;
    await db.transaction((tx) => tx.script(migration.sql));
    const [row] = await db.query<{ n: number }>(`select count(*)::int as n from cron.job where jobname = 'spendgate-sweep'`);
    expect(row!.n).toBe(1);
  });

  it('in another database of the same server (not cron.database_name) it changes nothing', async () => {
    await db.query('create database spendgate_elsewhere');
    const other = postgresDatabase(cluster.url('spendgate_elsewhere'), { max: 1 });
    try {
      expect(await migrate(other, readMigrations())).toContain(migrationName);
      expect(await cronSchemaCount(other)).toBe(0);
    } finally {
      await other.close();
    }
    const jobs = await db.query<{ database: string }>('select database from cron.job');
    expect(jobs).toEqual([{ database: 'postgres' }]);
  });
});
