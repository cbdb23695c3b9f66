/**
 * What a reserve + settle pair costs through spendgate, against the least the same budget check costs in raw SQL.
 * On a database of its own (made on the server of DATABASE_URL, or the local one, and dropped at the end), for
 * two workloads: spread (each pair on one of 10 000 keys with a budget of its own) and hot (every pair on one team
 * budget, plus its client's key). Each is driven by N closed-loop clients three ways: the baseline (raw SQL over
 * postgres.js), the app's fetch in this process, and the server (`functions/node-server.ts`) in a child process over
 * keep-alive HTTP. Then an open loop at half the peak HTTP rate for latency, the same on the floor's server (the same
 * server with a ledger that only commits one row per transaction, bench/service/floor-server.ts), optionally the
 * sweeper's cost, and the audit. Prints a table and the issue's targets; writes bench-results/bench.json.
 *
 * Run: npm run bench [-- --seconds 8 --clients 1,16,64,256 --sweep]; SPENDGATE_BATCH_MAX and SPENDGATE_BATCH_CONCURRENCY,
 * when set, go to the app in process and to the server.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { databaseClock } from '../lib/clock.ts';
import { postgresDatabase } from '../lib/db/postgres.ts';
import { createLedger } from '../lib/ledger.ts';
import { sweepDue } from '../lib/sweep.ts';
import {
  type BenchDatabase, createBenchDatabase, createFloorTable, insertKeyBudgets, insertKeyCounters, migrateBenchDatabase, putTeamBudget,
  seedExpiredHolds, serverVersion, vacuumAnalyze,
} from './service/database.ts';
import {
  adminGet, baselineDriver, createBaselineTables, groupCommitEnv, holdCost, httpDriver, inProcessDriver, settleCost, type Tokens,
} from './service/drivers.ts';
import { cpuWindow } from './service/cpu.ts';
import { type GroupCommitUse, groupCommitWindow } from './service/group-commit-use.ts';
import { type Driver, percentiles, type Phase, sleep, startClosedLoop, startOpenLoop, timed, type Workload } from './service/load.ts';
import {
  type ClosedLoopRow, closedLoopTable, type DriverName, groupCommitTable, type HalfPeakRow, halfPeakTable, scalingLine, type SweepReport,
  sweepLines, targetLines, type TargetResult, targets,
} from './service/report.ts';
import { loggedReserveDurations, type ServerKind, type ServerProcess, serverLogEnd, startServer } from './service/server.ts';

const SPREAD_KEYS = 10_000;
// Large enough that no pair of a whole run is refused: the bench measures admission, not refusal.
const SPREAD_BUDGET = '100';
const HOT_BUDGET = '1000000';
const HOT_TEAM = 'hot';
// Past this many connections a pool only queues inside Postgres (2 cores here); 256 clients share 64.
const MAX_POOL = 64;
const OPEN_LOOP_CONNECTIONS = 256;
const SWEEP_HOLDS = 100_000;
const WARMUP_SECONDS = 1.5;
// The server the open loops measure is warmed up first by this many closed-loop clients, this long per workload.
const WARM_UP_CLIENTS = 16;
const WARM_UP_SECONDS = 3;

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    clients: { type: 'string', default: '64' },
    sweep: { type: 'boolean', default: false },
  },
});
const seconds = Number(args.seconds);
const clientCounts = args.clients.split(',').map(Number);
if (!(seconds > 0) || clientCounts.some((n) => !Number.isSafeInteger(n) || n < 1)) {
  console.error('usage: npm run bench -- [--seconds N] [--clients 1,16,64,256] [--sweep]');
  process.exit(64);
}
const warmup = Math.min(WARMUP_SECONDS, seconds);
const poolFor = (clients: number) => Math.min(clients, MAX_POOL);

const workloads: Workload[] = [
  spreadWorkload('spread', 'spread'),
  { name: 'hot', target: (client) => ({ scopes: { team: HOT_TEAM, key: `hot-${client}` }, budget: 0 }) },
];

/** A pair on one of the SPREAD_KEYS keys `<prefix>-<n>` at random; in the baseline, budget row n. */
function spreadWorkload(name: string, prefix: string): Workload {
  return {
    name,
    target: () => {
      const n = 1 + Math.floor(Math.random() * SPREAD_KEYS);
      return { scopes: { key: `${prefix}-${n}` }, budget: n };
    },
  };
}

// What must be undone however the run ends (Ctrl-C included): the server process, the bench's database.
const cleanups: Array<() => Promise<void>> = [];
async function cleanUp(): Promise<void> {
  for (const step of cleanups.splice(0).reverse()) {
    await step().catch((error: unknown) => console.error('bench: cleanup failed:', error));
  }
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanUp().finally(() => process.exit(130)));
}

const tokens: Tokens = { admin: `bench_admin_${randomBytes(12).toString('hex')}`, service: `bench_service_${randomBytes(12).toString('hex')}` };
const started = performance.now();
const log = (message: string) => console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${message}`);

try {
  const bench = await createBenchDatabase();
  cleanups.push(() => bench.drop());
  await run(bench);
} finally {
  await cleanUp();
}

type Machine = Awaited<ReturnType<typeof setUp>>;

async function run(bench: BenchDatabase): Promise<void> {
  const sql = postgres(bench.url, { max: 2, onnotice: () => {} });
  cleanups.push(() => sql.end({ timeout: 5 }));
  const machine = await setUp(bench.url, sql);
  log(`database ${new URL(bench.url).pathname.slice(1)} ready; ${machine.cores} cores, ${machine.cpu}`);

  const rows: ClosedLoopRow[] = [];
  for (const clients of clientCounts) rows.push(...(await closedLoopRound(bench.url, sql, clients)));

  const pool = poolFor(Math.max(...clientCounts));
  const halfRate = (workload: Workload) =>
    Math.max(...rows.filter((r) => r.workload === workload.name && r.driver === 'http').map((r) => r.pairsPerSecond)) / 2;
  const server = await serverOn(bench.url, pool);
  await warmUp(server);
  const halfPeak: HalfPeakRow[] = [];
  for (const workload of workloads) halfPeak.push(await halfPeakLoop(sql, server, 'spendgate', workload, halfRate(workload)));
  // The floor at the same rates, on a server of its own, stopped before the sweep and the audit.
  const floor = await serverOn(bench.url, pool, 'floor');
  await warmUp(floor);
  for (const workload of workloads) halfPeak.push(await halfPeakLoop(sql, floor, 'floor', workload, halfRate(workload)));
  await stopServer(floor);
  const spreadRate = halfRate(workloads[0]!);
  const sweep = args.sweep ? await sweepPhase(bench.url, sql, server, spreadRate) : null;
  const audit = await auditAfterLoad(server);
  const targetList = targets(rows, halfPeak);

  printReport(machine, rows, halfPeak, sweep, audit, targetList);
  const out = fileURLToPath(new URL('../bench-results/bench.json', import.meta.url));
  await mkdir(fileURLToPath(new URL('../bench-results/', import.meta.url)), { recursive: true });
  const settings = {
    seconds, warmup_seconds: warmup, clients: clientCounts, max_pool: MAX_POOL, spread_keys: SPREAD_KEYS, hold: holdCost, settle: settleCost,
    group_commit: groupCommitEnv,
  };
  await writeFile(out, JSON.stringify({ machine, settings, closed_loop: rows, half_peak: halfPeak, sweep, audit, targets: targetList }, null, 2) + '\n');
  console.log(`\nwritten to ${out}`);
}

/** Migrates, sets the budgets (the spread keys' counters made up front, see insertKeyCounters), makes the
 * baseline's tables; returns what the machine is. */
async function setUp(url: string, sql: postgres.Sql) {
  await migrateBenchDatabase(url);
  await insertKeyBudgets(sql, 'spread', SPREAD_KEYS, SPREAD_BUDGET);
  await insertKeyCounters(sql, 'spread', SPREAD_KEYS);
  await putTeamBudget(sql, HOT_TEAM, HOT_BUDGET);
  await createBaselineTables(sql, SPREAD_KEYS, SPREAD_BUDGET, HOT_BUDGET);
  await createFloorTable(sql);
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memory_gib: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    postgres: await serverVersion(sql),
  };
}

function printReport(machine: Machine, rows: ClosedLoopRow[], halfPeak: HalfPeakRow[], sweep: SweepReport | null, audit: Audit,
                     targetList: TargetResult[]): void {
  console.log(`# spendgate service bench\n`);
  console.log(`${machine.cores} cores (${machine.cpu}), ${machine.memory_gib} GiB, Node ${machine.node}, PostgreSQL ${machine.postgres}; ` +
    `${seconds} s measured per phase after ${warmup} s of warm-up.`);
  console.log(`Pools: the baseline's postgres.js pool, the in-process app's and the server's SPENDGATE_POOL_SIZE are all ` +
    `min(clients, ${MAX_POOL}). Pairs hold ${holdCost} and settle ${settleCost}; no model, so no tokenizer. CPU: bench is ` +
    `this process (load generator, plus the app in process), server the HTTP server process, rest everything else (Postgres). ` +
    `The server's request log goes to bench-results/server.log; "in the server" is the reserves' time as it logs them (the app's ` +
    `time, without HTTP or this process). ` +
    `Group commit: ${Object.entries(groupCommitEnv).map(([name, value]) => `${name}=${value}`).join(', ') || 'the defaults'}.\n`);
  console.log('## Closed loop: N clients, each reserve then settle back to back\n');
  console.log(closedLoopTable(rows) + '\n');
  console.log('## Open loop at half the peak HTTP rate\n');
  console.log(halfPeakTable(halfPeak) + '\n');
  console.log('"floor" rows: the same rates on the same server (HTTP, app, pool, group commit) with a ledger that only ' +
    'commits one row per transaction and answers copies (bench/service/floor-server.ts): what the machine gives any ' +
    'ledger of this design, before its SQL.\n');
  console.log(`Group commit in the server over each open loop (its warm-up included), from its /metrics:\n`);
  console.log(groupCommitTable(halfPeak) + '\n');
  console.log('## Sweeper\n');
  console.log((sweep ? sweepLines(sweep) : `not run (seeding ${SWEEP_HOLDS.toLocaleString('en-US')} holds takes about 20 s on 2 cores); pass --sweep`) + '\n');
  console.log(`## Audit after the load\n\n${audit.ok ? 'ok' : 'NOT OK'}: ${audit.summary}\n`);
  console.log('## Targets\n');
  console.log(targetLines(targetList));
  console.log(`----  scaling (no threshold set): ${clientCounts.length > 1 ? scalingLine(rows) : 'one client count measured; pass --clients 1,16,64,256'}`);
}

/** The three drivers at `clients`, a workload at a time: its baseline, then the server over HTTP, then the app in
 * process, so that the ratio the targets read compares phases seconds apart, not a minute (this host's speed has
 * drifted by a third within minutes). The server runs for its phase only, and each driver's pool is closed before
 * the next one opens, so that no two pools hold connections at once. */
async function closedLoopRound(url: string, sql: postgres.Sql, clients: number): Promise<ClosedLoopRow[]> {
  const pool = poolFor(clients);
  const rows: ClosedLoopRow[] = [];
  for (const workload of workloads) {
    const measured: Array<{ driver: DriverName; result: Phase }> = [];
    const drive = async (driverName: DriverName, driver: Driver, serverPid: number | null = null) => {
      try {
        await vacuumAnalyze(sql);
        const result = await timed(startClosedLoop(driver, workload, clients), warmup, seconds, serverPid);
        measured.push({ driver: driverName, result });
        log(`${clients} clients, ${driverName} ${workload.name}: ${Math.round(result.pairsPerSecond)} pairs/s` +
          (result.errors ? `, ${result.errors} errors (${result.firstError})` : ''));
      } finally {
        await driver.close();
      }
    };
    await drive('baseline', baselineDriver(url, pool));
    const server = await serverOn(url, pool);
    try {
      await drive('http', httpDriver(server.base, clients, tokens.service), server.pid);
    } finally {
      await stopServer(server);
    }
    await drive('in-process', inProcessDriver(url, pool, tokens));
    const baseline = measured.find((m) => m.driver === 'baseline')!.result.pairsPerSecond;
    for (const { driver, result } of measured) {
      rows.push({ workload: workload.name, driver, clients, pool, ...result, ratioToBaseline: result.pairsPerSecond / baseline });
    }
  }
  return rows;
}

async function serverOn(url: string, pool: number, kind: ServerKind = 'spendgate'): Promise<ServerProcess> {
  const server = await startServer(url, pool, tokens, kind);
  cleanups.push(server.stop);
  return server;
}

async function stopServer(server: ServerProcess): Promise<void> {
  cleanups.splice(cleanups.indexOf(server.stop), 1);
  await server.stop();
}

/** Both workloads in a closed loop, unmeasured, on a server just started: so that the open loops measure a warm
 * server (its code optimized, its connections' plans made), not its first seconds, whose backlog an open loop at a
 * fixed rate then takes seconds to drain. */
async function warmUp(server: ServerProcess): Promise<void> {
  const driver = httpDriver(server.base, WARM_UP_CLIENTS, tokens.service);
  try {
    for (const workload of workloads) {
      const run = startClosedLoop(driver, workload, WARM_UP_CLIENTS);
      await sleep(WARM_UP_SECONDS * 1000);
      await run.stop();
    }
  } finally {
    await driver.close();
  }
}

/** `beforeLoad` runs once the database is vacuumed, just before the load starts. */
async function openLoop(sql: postgres.Sql, server: ServerProcess, workload: Workload, rate: number,
                        beforeLoad: () => Promise<void> = async () => {}): Promise<Phase> {
  const driver = httpDriver(server.base, OPEN_LOOP_CONNECTIONS, tokens.service);
  try {
    await vacuumAnalyze(sql);
    await beforeLoad();
    return await timed(startOpenLoop(driver, workload, rate), warmup, seconds, server.pid);
  } finally {
    await driver.close();
  }
}

/** An open loop at `rate` on `server`, with the server's own times for its reserves (from its log) and its group
 * commit's figures (from its /metrics, over the open loop and its warm-up, not over the vacuum before them). */
async function halfPeakLoop(sql: postgres.Sql, server: ServerProcess, kind: ServerKind, workload: Workload,
                            rate: number): Promise<HalfPeakRow> {
  const logStart = serverLogEnd();
  let groupCommitted: (() => Promise<GroupCommitUse>) | undefined;
  const measured = await openLoop(sql, server, workload, rate, async () => {
    groupCommitted = await groupCommitWindow(server.base, tokens.admin);
  });
  const groupCommit = await groupCommitted!();
  const serverReserve = percentiles(loggedReserveDurations(logStart, measured.measuredFrom, measured.seconds));
  log(`half peak ${workload.name}${kind === 'floor' ? ', floor' : ''}: reserve p99 ${measured.reserve.p99.toFixed(2)} ms`);
  return { workload: workload.name, server: kind, rate, ...measured, serverReserve, groupCommit };
}

/** Expired holds on keys of their own, then reserve latency at `rate` on those keys over HTTP, first with no
 * sweeper, then while one (sweepDue passes on a connection of its own, as `npm run sweep` runs) expires them all. */
async function sweepPhase(url: string, sql: postgres.Sql, server: ServerProcess, rate: number): Promise<SweepReport> {
  const seeding = performance.now();
  await insertKeyBudgets(sql, 'sweep', SPREAD_KEYS, SPREAD_BUDGET);
  await insertKeyCounters(sql, 'sweep', SPREAD_KEYS);
  await vacuumAnalyze(sql);
  const holds = await seedExpiredHolds(sql, 'sweep', SPREAD_KEYS, SWEEP_HOLDS, holdCost);
  const seedSeconds = (performance.now() - seeding) / 1000;
  log(`seeded ${holds} expired holds in ${seedSeconds.toFixed(1)} s`);

  const workload = spreadWorkload('sweep', 'sweep');
  const withoutSweep = await openLoop(sql, server, workload, rate);
  const driver = httpDriver(server.base, OPEN_LOOP_CONNECTIONS, tokens.service);
  const db = postgresDatabase(url, { max: 1 });
  try {
    const load = startOpenLoop(driver, workload, rate);
    await sleep(warmup * 1000);
    load.measure();
    const window = cpuWindow(server.pid);
    const sweeping = performance.now();
    const ledger = createLedger(db, databaseClock);
    let expired = 0;
    for (let complete = false; !complete; ) {
      const pass = await sweepDue(ledger);
      expired += pass.expired;
      complete = pass.complete;
    }
    const sweepSeconds = (performance.now() - sweeping) / 1000;
    const cpu = window();
    const measured = await load.stop();
    const withSweep = { ...measured, cpu: cpu(measured.pairs) };
    log(`swept ${expired} holds in ${sweepSeconds.toFixed(1)} s`);
    return { holds, seedSeconds, rate, withoutSweep, withSweep, expired, sweepSeconds };
  } finally {
    await db.close();
    await driver.close();
  }
}

interface Audit {
  ok: boolean;
  status: number;
  summary: string;
}

/** GET /v1/audit: every counter recomputed from the ledger must match after all that load. */
async function auditAfterLoad(server: ServerProcess): Promise<Audit> {
  const answer = await adminGet(server.base, '/v1/audit', tokens.admin);
  if (answer.status !== 200) return { ok: false, status: answer.status, summary: `GET /v1/audit answered ${answer.status}: ${answer.text.slice(0, 300)}` };
  const audit = JSON.parse(answer.text) as { ok: boolean; scopes_checked: number; mismatches: unknown[] };
  const summary = `${audit.scopes_checked} scopes checked, ${audit.mismatches.length} mismatches` +
    (audit.mismatches.length ? `: ${JSON.stringify(audit.mismatches.slice(0, 3))}` : '');
  return { ok: audit.ok, status: answer.status, summary };
}
