/**
 * The time a state change happens at. Periods, windows and expiry always use the database's clock: `now()`
 * returns null and the SQL uses its own transaction time. Tests inject a clock that returns a fixed, movable time,
 * which the SQL then uses instead, so nothing sleeps.
 */
export interface Clock {
  now(): Date | null;
}

export const databaseClock: Clock = { now: () => null };

export interface ManualClock extends Clock {
  set(at: Date | string): void;
  advance(seconds: number): void;
}

export function manualClock(start: Date | string = '2026-01-15T12:00:00Z'): ManualClock {
  let at = new Date(start);
  return {
    now: () => at,
    set: (next) => {
      at = new Date(next);
    },
    advance: (seconds) => {
      at = new Date(at.getTime() + seconds * 1000);
    },
  };
}
