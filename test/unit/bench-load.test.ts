// The bench's load generators (bench/service/load.ts): which requests a measured window times and counts.
import { describe, expect, it } from 'vitest';
import { type Driver, startClosedLoop, startOpenLoop } from '../../bench/service/load.ts';

const workload = { name: 'test', target: () => ({ scopes: { key: 'k' }, budget: 1 }) };
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A driver whose reserves each wait for the test to let them go (`answer`); settles answer on the next turn. */
function heldDriver() {
  const waiting: Array<() => void> = [];
  let reserves = 0;
  const driver: Driver = {
    reserve: () => {
      reserves++;
      return new Promise<string>((resolve) => waiting.push(() => resolve('id')));
    },
    settle: () => nextTurn(),
    close: async () => {},
  };
  return {
    driver,
    async answer(): Promise<void> {
      while (waiting.length === 0) await nextTurn();
      waiting.shift()!();
    },
    /** Once `count` reserves have been asked for. */
    async asked(count: number): Promise<void> {
      while (reserves < count) await nextTurn();
    },
  };
}

describe('a measured window', () => {
  it('times the requests that start in it, however late they end, and not those begun before it', async () => {
    const { driver, answer, asked } = heldDriver();
    const run = startClosedLoop(driver, workload, 1);
    // The first reserve starts before measuring and takes at least 200 ms: a warm-up straggler.
    run.measure();
    await sleep(200);
    await answer();
    // The second starts in the window and is answered only after it has ended.
    await asked(2);
    const stopped = run.stop();
    await answer();
    const measured = await stopped;
    expect(measured.reserve.p99).toBeLessThan(200);
    expect(measured.reserve.p50).not.toBeNaN();
    // The first pair completed in the window; the second after it.
    expect(measured.pairs).toBe(1);
  });

  it('counts the pairs that complete in it, in an open loop too', async () => {
    const { driver, answer } = heldDriver();
    const run = startOpenLoop(driver, workload, 1);
    await answer();
    await sleep(20);
    // Pair 0 completed before measuring: neither timed nor counted.
    run.measure();
    const measured = await run.stop();
    expect(measured.pairs).toBe(0);
    expect(measured.reserve.p50).toBeNaN();
  });
});
