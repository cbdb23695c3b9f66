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
  /** From now on, what starts is timed and what completes is counted. */
  measure(): void;
  /** Stops starting pairs, waits for those in flight, and returns what was measured. */
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
      recorder.end();
      await Promise.all(loops);
      return recorder.finish(null);
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
      recorder.end();
      await Promise.all(inFlight);
      return recorder.finish(percentiles(lags));
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
  const t0 = performance.now();
  try {
    const id = await driver.reserve(target);
    const t1 = performance.now();
    recorder.reserved(t0, t1 - t0);
    await driver.settle(id);
    const t2 = performance.now();
    recorder.settled(t1, t2 - t1);
    recorder.completed(t2);
  } catch (error) {
    recorder.failed(t0, error);
  }
}

/** The window between start() and end(): the latency of each request that started in it, however late it ends
 * (the load generators wait for those in flight before finish()), and the pairs that completed in it. Counting
 * completions (not starts) keeps the rate unbiased by the pairs in flight at either edge. Timing by start leaves out
 * the warm-up's stragglers, which a window timing what completes took in: on a server just started, 256 clients'
 * first reserves waited for its cold start, ended past the warm-up, and put reserve p99 at about 1.5 s. It also keeps
 * the window's own slow requests that end after it. */
class Recorder {
  private from = Infinity;
  private until = Infinity;
  private fromEpoch = 0;
  private pairs = 0;
  private readonly reserve: number[] = [];
  private readonly settle: number[] = [];
  private errors = 0;
  private firstError: string | null = null;

  get measuring(): boolean {
    return this.within(performance.now());
  }

  start(): void {
    this.from = performance.now();
    this.fromEpoch = Date.now();
  }

  end(): void {
    this.until = performance.now();
  }

  /** A reserve that started at `startedAt` (performance.now()) took `ms`. */
  reserved(startedAt: number, ms: number): void {
    if (this.within(startedAt)) this.reserve.push(ms);
  }

  settled(startedAt: number, ms: number): void {
    if (this.within(startedAt)) this.settle.push(ms);
  }

  /** A pair ended at `at`. */
  completed(at: number): void {
    if (this.within(at)) this.pairs++;
  }

  failed(startedAt: number, error: unknown): void {
    if (!this.within(startedAt)) return;
    this.errors++;
    this.firstError ??= error instanceof Error ? error.message : String(error);
  }

  finish(startLag: Percentiles | null): Measured {
    const seconds = (this.until - this.from) / 1000;
    return {
      measuredFrom: this.fromEpoch,
      seconds,
      pairs: this.pairs,
      pairsPerSecond: this.pairs / seconds,
      reserve: percentiles(this.reserve),
      settle: percentiles(this.settle),
      errors: this.errors,
      firstError: this.firstError,
      startLag,
    };
  }

  private within(at: number): boolean {
    return at >= this.from && at < this.until;
  }
}

/** Nearest-rank percentiles; NaN when nothing was recorded. */
export function percentiles(values: number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const at = (p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!);
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}
