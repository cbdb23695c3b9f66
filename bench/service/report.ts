// What the bench prints and writes: the figures, and the issue's targets as pass/fail lines beside them.
import type { CpuUse } from './cpu.ts';
import type { GroupCommitUse } from './group-commit-use.ts';
import type { Percentiles, Phase } from './load.ts';
import type { ServerKind } from './server.ts';

export type DriverName = 'baseline' | 'in-process' | 'http';

export interface ClosedLoopRow extends Phase {
  workload: string;
  driver: DriverName;
  clients: number;
  /** Connections of the pool in front of Postgres: the baseline's, the in-process app's and SPENDGATE_POOL_SIZE. */
  pool: number;
  /** pairs/s over the baseline's at the same workload and clients. */
  ratioToBaseline: number;
}

export interface HalfPeakRow extends Phase {
  workload: string;
  /** spendgate's server, or the floor's: the same server with a ledger that only commits a row per transaction. */
  server: ServerKind;
  /** Pairs per second asked for: half the best HTTP rate this workload reached. */
  rate: number;
  /** The same reserves as the server's request log timed them: the app's time, without HTTP or the load generator. */
  serverReserve: Percentiles;
  groupCommit: GroupCommitUse;
}

export interface SweepReport {
  holds: number;
  seedSeconds: number;
  rate: number;
  withoutSweep: Phase;
  withSweep: Phase;
  expired: number;
  sweepSeconds: number;
}

export interface TargetResult {
  name: string;
  pass: boolean;
  detail: string;
}

const ms = (value: number) => (Number.isNaN(value) ? '-' : value.toFixed(value < 10 ? 2 : 1));
const rate = (value: number) => Math.round(value).toLocaleString('en-US');
const cpuCells = ({ busyPercent, stolenPercent, perPair }: CpuUse) =>
  `${Math.round(busyPercent)}%${stolenPercent === null ? '' : `, ${stolenPercent.toFixed(1)}% stolen`} | ${perPair.machine.toFixed(1)} = ${perPair.bench.toFixed(1)} + ${perPair.server?.toFixed(1) ?? '-'} + ${perPair.rest.toFixed(1)}`;
const cpuHeading = 'CPU busy | CPU ms/pair = bench + server + rest';

export function closedLoopTable(rows: ClosedLoopRow[]): string {
  const lines = [
    `| clients | pool | workload | driver | pairs/s | reserve p50 / p95 / p99 ms | settle p50 / p95 / p99 ms | × baseline | errors | ${cpuHeading} |`,
    '|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.clients} | ${row.pool} | ${row.workload} | ${row.driver} | ${rate(row.pairsPerSecond)} | ` +
        `${ms(row.reserve.p50)} / ${ms(row.reserve.p95)} / ${ms(row.reserve.p99)} | ` +
        `${ms(row.settle.p50)} / ${ms(row.settle.p95)} / ${ms(row.settle.p99)} | ${row.ratioToBaseline.toFixed(2)} | ${row.errors} | ` +
        `${cpuCells(row.cpu)} |`,
    );
  }
  return lines.join('\n');
}

const label = (row: HalfPeakRow) => (row.server === 'floor' ? `${row.workload}, floor` : row.workload);

export function halfPeakTable(rows: HalfPeakRow[]): string {
  const lines = [
    `| workload | asked pairs/s | done pairs/s | reserve p50 / p95 / p99 ms | in the server p50 / p95 / p99 ms | settle p50 / p95 / p99 ms | start lag p99 ms | errors | ${cpuHeading} |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    lines.push(
      `| ${label(row)} | ${rate(row.rate)} | ${rate(row.pairsPerSecond)} | ` +
        `${ms(row.reserve.p50)} / ${ms(row.reserve.p95)} / ${ms(row.reserve.p99)} | ` +
        `${ms(row.serverReserve.p50)} / ${ms(row.serverReserve.p95)} / ${ms(row.serverReserve.p99)} | ` +
        `${ms(row.settle.p50)} / ${ms(row.settle.p95)} / ${ms(row.settle.p99)} | ${ms(row.startLag?.p99 ?? NaN)} | ${row.errors} | ` +
        `${cpuCells(row.cpu)} |`,
    );
  }
  return lines.join('\n');
}

export function groupCommitTable(rows: HalfPeakRow[]): string {
  const lines = [
    "| workload | transactions/s | calls per transaction | transaction ms, mean | a call's wait for it ms, mean | share of the time one was in flight |",
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    const g = row.groupCommit;
    lines.push(`| ${label(row)} | ${rate(g.transactionsPerSecond)} | ${g.callsPerTransaction.toFixed(1)} | ${ms(g.transactionMs)} | ` +
      `${ms(g.queueWaitMs)} | ${Math.round(g.inFlight * 100)}% |`);
  }
  return lines.join('\n');
}

export function sweepLines(sweep: SweepReport): string {
  const line = (name: string, m: Phase) =>
    `| ${name} | ${rate(m.pairsPerSecond)} | ${ms(m.reserve.p50)} | ${ms(m.reserve.p99)} | ${m.seconds.toFixed(1)} | ${m.errors} | ${cpuCells(m.cpu)} |`;
  return [
    `${sweep.holds.toLocaleString('en-US')} expired holds seeded in ${sweep.seedSeconds.toFixed(1)} s; the sweeper (sweepDue passes, ` +
      `one connection) expired ${sweep.expired.toLocaleString('en-US')} in ${sweep.sweepSeconds.toFixed(1)} s ` +
      `(${rate(sweep.expired / sweep.sweepSeconds)} holds/s), under HTTP load at ${rate(sweep.rate)} pairs/s on the same keys.`,
    '',
    `| reserve over HTTP | pairs/s | p50 ms | p99 ms | measured s | errors | ${cpuHeading} |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    line('without a sweep', sweep.withoutSweep),
    line('while the sweep runs', sweep.withSweep),
  ].join('\n');
}

/** The issue's targets, each at every client count measured. */
export function targets(rows: ClosedLoopRow[], halfPeak: HalfPeakRow[]): TargetResult[] {
  const found: TargetResult[] = [];
  const ratioTarget = (workload: string, least: number) => {
    for (const row of rows.filter((r) => r.workload === workload && r.driver === 'http')) {
      found.push({
        name: `${workload}: service ≥ ${least} × baseline at ${row.clients} clients`,
        pass: row.ratioToBaseline >= least,
        detail: `${row.ratioToBaseline.toFixed(2)} × (${rate(row.pairsPerSecond)} vs ${rate(row.pairsPerSecond / row.ratioToBaseline)} pairs/s)`,
      });
    }
  };
  ratioTarget('spread', 0.5);
  ratioTarget('hot', 2);
  for (const row of halfPeak.filter((r) => r.server === 'spendgate')) {
    // A rate the service did not keep up with is a failure whatever the latency of what it did answer.
    const keptUp = row.pairsPerSecond >= 0.95 * row.rate;
    const floor = halfPeak.find((r) => r.server === 'floor' && r.workload === row.workload);
    found.push({
      name: `${row.workload}: reserve p99 ≤ 10 ms at half the peak rate (${rate(row.rate)} pairs/s)`,
      pass: row.reserve.p99 <= 10 && keptUp && row.errors === 0,
      detail: `p99 ${ms(row.reserve.p99)} ms at ${rate(row.pairsPerSecond)} pairs/s done` + (row.errors ? `, ${row.errors} errors` : '') +
        (floor ? ` (the floor's: ${ms(floor.reserve.p99)} ms)` : ''),
    });
  }
  return found;
}

export function targetLines(list: TargetResult[]): string {
  return list.map((t) => `${t.pass ? 'PASS' : 'FAIL'}  ${t.name}: ${t.detail}`).join('\n');
}

/** HTTP pairs/s of each workload at each client count: the scaling the issue asks to see (it sets no threshold). */
export function scalingLine(rows: ClosedLoopRow[]): string {
  const workloads = [...new Set(rows.map((r) => r.workload))];
  return workloads
    .map((workload) => {
      const http = rows.filter((r) => r.workload === workload && r.driver === 'http');
      return `${workload}: ` + http.map((r) => `${r.clients} clients ${rate(r.pairsPerSecond)}`).join(', ') + ' pairs/s';
    })
    .join('; ');
}
