import { DatabaseUnavailable } from '../db.ts';

/**
 * At most `size` statements at once, one per pooled connection; the others wait their turn in order. While the
 * database cannot be reached, nobody waits: postgres.js would otherwise keep statements queued for as long as the
 * database stays away (reconnecting with a backoff of up to 20 s), and every request would hang. Once a connection
 * attempt has failed, the waiting statements and every new one that finds no free connection are refused at once
 * with DatabaseUnavailable (503), never having been sent, so nothing was written; a statement that finds a free
 * connection tries it, and the first one that gets through ends the outage.
 */
export function connectionSlots(size: number) {
  let free = size;
  let unreachable = false;
  const waiting: Array<{ grant: () => void; refuse: (error: Error) => void }> = [];
  const refusal = () => new DatabaseUnavailable('the database cannot be reached', { unreachable: true });

  const acquire = (): Promise<void> => {
    if (free > 0) {
      free -= 1;
      return Promise.resolve();
    }
    if (unreachable) return Promise.reject(refusal());
    return new Promise((grant, refuse) => waiting.push({ grant, refuse }));
  };
  const release = () => {
    const next = waiting.shift();
    if (next) next.grant();
    else free += 1;
  };
  return {
    async run<T>(fn: () => Promise<T>): Promise<T> {
      await acquire();
      try {
        const result = await fn();
        unreachable = false;
        return result;
      } catch (error) {
        if (error instanceof DatabaseUnavailable && error.unreachable) {
          unreachable = true;
          for (const waiter of waiting.splice(0)) waiter.refuse(refusal());
        } else if (!(error instanceof DatabaseUnavailable && error.outcomeUnknown)) {
          // The server answered (with an error): it is there.
          unreachable = false;
        }
        throw error;
      } finally {
        release();
      }
    },
  };
}
