// The load generators: closed loop (N clients, each doing reserve then settle back to back) and open loop (pairs
// started at a fixed rate whatever the answers do). Both run until stopped and record only while measuring, so a
// phase is warm-up, then measure, then stop.
import { type CpuUse, cpuWindow } from './cpu.ts';

/** Where a pair's reserve goes: the service's scopes, or the baseline's budget row. */
export interface Target {
  scopes: Record<string, string>;
  budget: number;
}

export interface Workload {
  name: string;
  /** What the pair that `client` (a closed-loop client, or a slot of the open loop) starts next reserves against. */
  target(client: number): Target;
}

/** One way to reserve and settle: the baseline's raw SQL, the app in process, or the server over HTTP. */
export interface Driver {
  /** Holds and returns the hold's id; throws unless held. */
  reserve(target: Target): Promise<string>;
  /** Settles the hold; throws unless settled. */
  settle(id: string): Promise<void>;
  close(): Promise<void>;
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
}

export interface Measured {
  /** When measuring began (ms since the epoch), and for how long. */
  measuredFrom: number;
  seconds: number;
  pairs: number;
  pairsPerSecond: number;
  /** Milliseconds, from each request's own start. */
  reserve: Percentiles;
  settle: Percentiles;
  errors: number;
  firstError: string | null;
  /** Open loop only: how late pairs started against their schedule (ms), which shows whether the generator kept up. */
  startLag: Percentiles | null;
}

export interface LoadRun {
  /** From now on, what completes is recorded. */
  measure(): void;
  /** Stops starting pairs, waits for those in flight, and returns what completed while measuring. */
  stop(): Promise<Measured>;
}

/** `clients` loops, each starting its next pair when the last one ends: the most the driver can do at that concurrency. */
export function startClosedLoop(driver: Driver, workload: Workload, clients: number): LoadRun {
  const recorder = new Recorder();
  let running = true;
  const loops = Array.from({ length: clients }, async (_, client) => {
    while (running) await runPair(driver, workload.target(client), recorder);
  });
  return {
    measure: () => recorder.start(),
    async stop() {
      running = false;
      const measured = recorder.finish(null);
      await Promise.all(loops);
      return measured;
    },
  };
}

/** Open-loop clients reuse this many scopes in turn (the hot workload's per-client keys). */
const openLoopSlots = 64;

/** Pairs started at `rate` per second, however long the answers take: latency at a given load. The timer wakes
 * when the next pair is due, not every millisecond: on 2 cores, a load generator that polls takes CPU from the
 * server it measures. */
export function startOpenLoop(driver: Driver, workload: Workload, rate: number): LoadRun {
  const recorder = new Recorder();
  const lags: number[] = [];
  const inFlight = new Set<Promise<void>>();
  const begun = performance.now();
  let started = 0;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    const now = performance.now();
    // Pair k is due at begun + k / rate: pair 0 at once.
    for (const due = Math.floor(((now - begun) * rate) / 1000) + 1; started < due; started++) {
      const scheduled = begun + (started * 1000) / rate;
      if (recorder.measuring) lags.push(now - scheduled);
      const pair = runPair(driver, workload.target(started % openLoopSlots), recorder);
      inFlight.add(pair);
      void pair.then(() => inFlight.delete(pair));
    }
    timer = setTimeout(tick, Math.max(1, begun + (started * 1000) / rate - performance.now()));
  };
  tick();
  return {
    measure: () => recorder.start(),
    async stop() {
      clearTimeout(timer);
      const measured = recorder.finish(percentiles(lags));
      await Promise.all(inFlight);
      return measured;
    },
  };
}

export interface Phase extends Measured {
  cpu: CpuUse;
}

/** Warm-up, then `seconds` measured, with the CPU each process spent in that time (`serverPid`: the server's). */
export async function timed(run: LoadRun, warmupSeconds: number, seconds: number, serverPid: number | null): Promise<Phase> {
  await sleep(warmupSeconds * 1000);
  run.measure();
  const window = cpuWindow(serverPid);
  await sleep(seconds * 1000);
  const cpu = window();
  const measured = await run.stop();
  return { ...measured, cpu: cpu(measured.pairs) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function runPair(driver: Driver, target: Target, recorder: Recorder): Promise<void> {
  try {
    const t0 = performance.now();
    const id = await driver.reserve(target);
    const t1 = performance.now();
    recorder.reserved(t1 - t0);
    await driver.settle(id);
    recorder.settled(performance.now() - t1);
  } catch (error) {
    recorder.failed(error);
  }
}

/** Records what completes between start() and finish(): counting completions (not starts) in the window keeps the
 * rate unbiased by the pairs in flight at either edge. */
class Recorder {
  measuring = false;
  private startedAt = 0;
  private startedAtEpoch = 0;
  private readonly reserve: number[] = [];
  private readonly settle: number[] = [];
  private errors = 0;
  private firstError: string | null = null;

  start(): void {
    this.measuring = true;
    this.startedAt = performance.now();
    this.startedAtEpoch = Date.now();
  }

  reserved(ms: number): void {
    if (this.measuring) this.reserve.push(ms);
  }

  settled(ms: number): void {
    if (this.measuring) this.settle.push(ms);
  }

  failed(error: unknown): void {
    if (!this.measuring) return;
    this.errors++;
    this.firstError ??= error instanceof Error ? error.message : String(error);
  }

  finish(startLag: Percentiles | null): Measured {
    this.measuring = false;
    const seconds = (performance.now() - this.startedAt) / 1000;
    return {
      measuredFrom: this.startedAtEpoch,
      seconds,
      pairs: this.settle.length,
      pairsPerSecond: this.settle.length / seconds,
      reserve: percentiles(this.reserve),
      settle: percentiles(this.settle),
      errors: this.errors,
      firstError: this.firstError,
      startLag,
    };
  }
}

/** Nearest-rank percentiles; NaN when nothing was recorded. */
export function percentiles(values: number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const at = (p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!);
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}
