// How the server's group commit ran during a phase, from its /metrics (spendgate_ledger_*): how many calls shared a
// transaction, how long a transaction took and a call waited for one, and how much of the time one was in flight.
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { adminGet } from './drivers.ts';

export interface GroupCommitUse {
  transactionsPerSecond: number;
  callsPerTransaction: number;
  /** Means, in milliseconds. */
  transactionMs: number;
  queueWaitMs: number;
  /** Transaction time over wall time: 1 is one transaction in flight all the time (SPENDGATE_BATCH_CONCURRENCY=1). */
  inFlight: number;
}

interface Totals {
  at: number;
  transactions: number;
  calls: number;
  transactionSeconds: number;
  waits: number;
  waitSeconds: number;
}

async function totals(base: string, adminToken: string): Promise<Totals> {
  const at = performance.now();
  const answer = await adminGet(base, '/metrics', adminToken);
  if (answer.status !== 200) throw new Error(`GET /metrics answered ${answer.status}`);
  const families = parsePrometheusTextFormat(answer.text);
  // A histogram's count and sum (these have no labels, so one series each).
  const histogram = (name: string) => {
    const series = families.find((family) => family.name === name)?.metrics[0];
    if (!series) throw new Error(`no ${name} in /metrics`);
    return { count: Number(series.count), sum: Number(series.sum) };
  };
  const perTransaction = histogram('spendgate_ledger_calls_per_transaction');
  const waits = histogram('spendgate_ledger_queue_wait_seconds');
  return {
    at,
    transactions: perTransaction.count,
    calls: perTransaction.sum,
    transactionSeconds: histogram('spendgate_ledger_transaction_duration_seconds').sum,
    waits: waits.count,
    waitSeconds: waits.sum,
  };
}

/** Reads the server's totals now; the function it returns reads them again and gives what happened in between. */
export async function groupCommitWindow(base: string, adminToken: string): Promise<() => Promise<GroupCommitUse>> {
  const start = await totals(base, adminToken);
  return async () => {
    const end = await totals(base, adminToken);
    const transactions = end.transactions - start.transactions;
    const seconds = (end.at - start.at) / 1000;
    return {
      transactionsPerSecond: transactions / seconds,
      callsPerTransaction: (end.calls - start.calls) / transactions,
      transactionMs: ((end.transactionSeconds - start.transactionSeconds) * 1000) / transactions,
      queueWaitMs: ((end.waitSeconds - start.waitSeconds) * 1000) / (end.waits - start.waits),
      inFlight: (end.transactionSeconds - start.transactionSeconds) / seconds,
    };
  };
}
