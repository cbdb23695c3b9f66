import { DatabaseUnavailable, hasSqlState } from './db.ts';

export interface GroupCommitOptions {
  /** Calls in one batch at most. 1 sends every call on its own. */
  maxBatch: number;
  /** Batches in flight at once. A call that arrives while all are busy waits for the next batch. */
  maxInFlight: number;
}

/** What group commit reports, for metrics. */
export interface GroupCommitObserver {
  /** A transaction of `calls` calls got its answer (or failed) `seconds` after it was sent. */
  transaction(calls: number, seconds: number): void;
  /** A call waited `seconds` between its arrival and the sending of its transaction. */
  waited(seconds: number): void;
}

/** A batch in flight longer than this stops holding its slot: a batch stuck behind a lock (a stuck transaction
 * on a hot scope) must not hold back calls on other scopes. Far above a batch's usual few milliseconds. */
const stalledAfterMs = 250;

/**
 * Group commit: calls made while earlier ones are in flight wait and go together, as one batch, in one
 * transaction. A call that finds a batch slot free goes at once, alone, so a quiet server adds no latency; under
 * load, batches grow to what arrived during the last round trip. `runOne` is the call's own statement, `runBatch`
 * the batch's (answers in the items' order).
 *
 * A batch is all or nothing. When the database refused it (an error in one call, a lock not had in time: it was
 * rolled back), its calls run again one by one, so that each gets its own answer or error. Any other failure
 * (unreachable, the connection lost after the batch was sent, an error after the database answered) may come after
 * a commit, so every call gets that error, as a single call would have, and none is sent again.
 */
export function groupCommit<Item, Answer>(
  runOne: (item: Item) => Promise<Answer>,
  runBatch: (items: Item[]) => Promise<Answer[]>,
  options: GroupCommitOptions,
  observer?: GroupCommitObserver,
): (item: Item) => Promise<Answer> {
  interface Waiting {
    item: Item;
    /** performance.now() when it arrived, for the observer's `waited`. */
    arrived: number;
    resolve: (answer: Answer) => void;
    reject: (error: unknown) => void;
  }
  const queue: Waiting[] = [];
  let slotsTaken = 0;

  // A transaction of `calls` calls, reported to the observer once the database has answered or failed.
  const observed = <T>(calls: number, sent: Promise<T>): Promise<T> => {
    if (!observer) return sent;
    const sentAt = performance.now();
    const report = () => observer.transaction(calls, (performance.now() - sentAt) / 1000);
    return sent.then(
      (value) => {
        report();
        return value;
      },
      (error: unknown) => {
        report();
        throw error;
      },
    );
  };
  const runAlone = (call: Waiting) => observed(1, runOne(call.item)).then(call.resolve, call.reject);

  // The next batch is sent as soon as the database has answered, before the answers are handed out: handing them
  // out runs each caller's own code (its HTTP answer), and the database would otherwise wait idle through it.
  const run = (calls: Waiting[], freeSlot: () => void): Promise<unknown> => {
    const items = calls.map((call) => call.item);
    if (observer) {
      const now = performance.now();
      for (const call of calls) observer.waited((now - call.arrived) / 1000);
    }
    const answered = observed(items.length, items.length === 1 ? runOne(items[0]!).then((answer) => [answer]) : runBatch(items));
    return answered.then(
      (answers) => {
        freeSlot();
        calls.forEach((call, i) => call.resolve(answers[i]!));
      },
      (error: unknown) => {
        // The retries keep the slot: a failing batch does not add to the calls in flight.
        if (calls.length > 1 && rolledBack(error)) return Promise.all(calls.map(runAlone));
        freeSlot();
        calls.forEach((call) => call.reject(error));
      },
    );
  };

  const dispatch = () => {
    while (slotsTaken < options.maxInFlight && queue.length > 0) {
      const calls = queue.splice(0, options.maxBatch);
      slotsTaken += 1;
      let holdsSlot = true;
      const freeSlot = () => {
        if (!holdsSlot) return;
        holdsSlot = false;
        clearTimeout(stalled);
        slotsTaken -= 1;
        dispatch();
      };
      const stalled = setTimeout(freeSlot, stalledAfterMs);
      void run(calls, freeSlot).finally(freeSlot);
    }
  };

  return (item) =>
    new Promise<Answer>((resolve, reject) => {
      queue.push({ item, arrived: performance.now(), resolve, reject });
      dispatch();
    });
}

function rolledBack(error: unknown): boolean {
  if (error instanceof DatabaseUnavailable) return !error.outcomeUnknown && !error.unreachable;
  return hasSqlState(error);
}
