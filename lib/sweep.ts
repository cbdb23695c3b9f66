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

/** One sweeper pass: batches until one comes back short. What `/v1/sweep` and `npm run sweep` run. */
export async function sweepDue(ledger: Pick<Ledger, 'sweepBatch'>, batchSize = sweepBatchSize): Promise<SweepResult> {
  let expired = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const count = await ledger.sweepBatch(batchSize);
    expired += count;
    if (count < batchSize) return { expired, complete: true };
  }
  return { expired, complete: false };
}
