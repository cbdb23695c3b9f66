// The sweeper's pacing: after each full batch it waits as long as that batch took, and not after the last.
import { describe, expect, it } from 'vitest';
import { sweepDue } from '../../lib/sweep.ts';

/** A ledger whose batches expire `counts` in turn, each taking `ms`. */
function slowLedger(counts: number[], ms: number) {
  return {
    sweepBatch: async (size: number) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return Math.min(counts.shift() ?? 0, size);
    },
  };
}

describe('sweepDue', () => {
  it('waits after each full batch as long as it took, and stops at the first short batch', async () => {
    const waits: number[] = [];
    const result = await sweepDue(slowLedger([100, 100, 40], 30), 100, async (ms) => {
      waits.push(ms);
    });
    expect(result).toEqual({ expired: 240, complete: true });
    expect(waits).toHaveLength(2);
    // Each batch took at least its 30 ms timer (less a timer's rounding); the wait is that time, not a constant.
    for (const ms of waits) expect(ms).toBeGreaterThanOrEqual(25);
  });

  it('stops after 500 full batches, with no wait after the last, and says more are due', async () => {
    let waits = 0;
    const result = await sweepDue(slowLedger(Array(600).fill(10), 0), 10, async () => { waits += 1; });
    expect(result).toEqual({ expired: 5000, complete: false });
    expect(waits).toBe(499);
  });

  it('does not wait when the first batch is short', async () => {
    const waits: number[] = [];
    expect(await sweepDue(slowLedger([3], 1), 100, async (ms) => { waits.push(ms); })).toEqual({ expired: 3, complete: true });
    expect(waits).toEqual([]);
  });
});
