import { DatabaseUnavailable } from '../db.ts';

/**
 * At most `size` statements at once, one per pooled connection, and a bounded wait for a turn. postgres.js would
 * otherwise queue statements without limit while its connections are busy or reconnecting to a database that is
 * down, and a request could hang for as long as the database stays away. A statement that waited `waitMs` without a
 * connection is refused with DatabaseUnavailable (503) before it was ever sent, so nothing was written.
 */
export function connectionSlots(size: number, waitMs: number) {
  let free = size;
  const waiting: Array<() => void> = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else free += 1;
  };
  const acquire = (): Promise<void> => {
    if (free > 0) {
      free -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiting.splice(waiting.indexOf(grant), 1);
        reject(new DatabaseUnavailable(`no database connection within ${waitMs} ms`));
      }, waitMs);
      waiting.push(grant);
    });
  };
  return {
    async run<T>(fn: () => Promise<T>): Promise<T> {
      await acquire();
      try {
        return await fn();
      } finally {
        release();
      }
    },
  };
}
