import type { Ledger } from './ledger.ts';

export interface SweepResult {
  /** Held reservations past their expiry that this pass expired. */
  expired: number;
  /** False when the pass stopped at its batch limit with holds perhaps still due: another pass should follow. */
  complete: boolean;
}

// Each batch is one transaction (its rows taken FOR UPDATE SKIP LOCKED, so sweepers running at once share the work
// and never wait for each other); a pass stops after maxBatches so that a cron invocation ends in bounded time.
// Batches are small because a batch holds the counters of all its holds locked until it commits, and a reserve on
// any of those scopes waits for it: at 1000 holds a batch, reserves on the swept scopes waited seconds.
export const sweepBatchSize = 100;
const maxBatches = 500;

/** Waits `ms`; the sweeper's pause between batches. */
export type Wait = (ms: number) => Promise<void>;
const pause: Wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One sweeper pass: batches until one comes back short. What `/v1/sweep` and `npm run sweep` run. After each full
 * batch it waits as long as that batch took, so that it keeps at most half of one database connection's time busy:
 * it is background work (a reserve expires the stale holds it needs gone itself), and at full speed a sweep of
 * 100 000 holds took a core from live traffic on a 2-core machine, whose reserves then fell behind.
 */
export async function sweepDue(ledger: Pick<Ledger, 'sweepBatch'>, batchSize = sweepBatchSize, wait: Wait = pause): Promise<SweepResult> {
  let expired = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const started = performance.now();
    const count = await ledger.sweepBatch(batchSize);
    expired += count;
    if (count < batchSize) return { expired, complete: true };
    if (batch + 1 < maxBatches) await wait(performance.now() - started);
  }
  return { expired, complete: false };
}
