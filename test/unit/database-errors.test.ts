// Which database failures become 503 `unavailable`, and whether the answer may say that nothing was written.
import { describe, expect, it } from 'vitest';
import { classifyDatabaseError, DatabaseUnavailable } from '../../lib/db.ts';
import { connectionSlots } from '../../lib/db/connection-slots.ts';

const withCode = (code: string) => Object.assign(new Error(`failed: ${code}`), { code });

describe('classifyDatabaseError', () => {
  it.each([
    ['ECONNREFUSED', 'connection refused: the database is down'],
    ['CONNECT_TIMEOUT', "postgres.js: no connection within connect_timeout"],
    ['ENOTFOUND', 'the host name does not resolve'],
    ['55P03', 'lock_not_available: lock_timeout on a hot row'],
    ['57014', 'query_canceled: statement_timeout'],
    ['57P03', 'cannot_connect_now: starting up or shutting down'],
    ['53300', 'too_many_connections'],
    ['40P01', 'deadlock_detected'],
  ])('%s (%s) is 503, nothing written', (code) => {
    const classified = classifyDatabaseError(withCode(code));
    expect(classified).toBeInstanceOf(DatabaseUnavailable);
    expect((classified as DatabaseUnavailable).outcomeUnknown).toBe(false);
    // Only a connection that could not be made counts as the database being unreachable.
    expect((classified as DatabaseUnavailable).unreachable).toBe(!['55P03', '57014', '40P01'].includes(code));
    expect((classified as DatabaseUnavailable).cause).toMatchObject({ code });
  });

  it.each([
    ['CONNECTION_CLOSED', 'postgres.js: the connection closed under a sent statement'],
    ['CONNECTION_DESTROYED', 'postgres.js: the connection was destroyed under a sent statement'],
    ['ECONNRESET', 'the connection was reset'],
    ['57P01', 'admin_shutdown: the backend was terminated'],
    ['57P02', 'crash_shutdown'],
    ['08006', 'connection_failure'],
  ])('%s (%s) is 503 with the outcome unknown', (code) => {
    const classified = classifyDatabaseError(withCode(code));
    expect(classified).toBeInstanceOf(DatabaseUnavailable);
    expect((classified as DatabaseUnavailable).outcomeUnknown).toBe(true);
  });

  it.each(['23505', '22P02', 'SG409', 'P0001', ''])('%s stays the error it was (a bug, not an outage)', (code) => {
    const error = withCode(code);
    expect(classifyDatabaseError(error)).toBe(error);
    expect(classifyDatabaseError('not even an error')).toBe('not even an error');
  });
});

describe('connectionSlots', () => {
  const unreachable = () => new DatabaseUnavailable('refused', { unreachable: true });

  it('runs at most `size` at once, the others in turn, however long they wait while the database answers', async () => {
    const slots = connectionSlots(2);
    let running = 0;
    let most = 0;
    const task = () =>
      slots.run(async () => {
        running += 1;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, 10));
        running -= 1;
        return 'done';
      });
    expect(await Promise.all(Array.from({ length: 7 }, task))).toEqual(Array(7).fill('done'));
    expect(most).toBe(2);
  });

  it('once a connection cannot be made, refuses the waiting statements and new ones at once, unsent, until one gets through', async () => {
    const slots = connectionSlots(1);
    const attempt = deferred();
    const first = slots.run(() => attempt.promise);
    let ran = 0;
    const waiting = slots.run(async () => (ran += 1));
    attempt.reject(unreachable());
    await expect(first).rejects.toMatchObject({ unreachable: true });
    await expect(waiting).rejects.toBeInstanceOf(DatabaseUnavailable);
    expect(ran).toBe(0);
    // A free connection is still tried (it may be back); its success ends the outage.
    const probe = deferred();
    const probing = slots.run(() => probe.promise);
    await expect(slots.run(async () => (ran += 1))).rejects.toMatchObject({ unreachable: true });
    probe.resolve();
    await probing;
    expect(await Promise.all([slots.run(async () => 'a'), slots.run(async () => 'b')])).toEqual(['a', 'b']);
    expect(ran).toBe(0);
  });

  it('an error the server answered with frees the slot and leaves the database reachable', async () => {
    const slots = connectionSlots(1);
    await expect(slots.run(() => Promise.reject(Object.assign(new Error('syntax'), { code: '42601' })))).rejects.toThrow('syntax');
    expect(await slots.run(async () => 'next')).toBe('next');
  });
});

/** A promise and the functions that settle it. */
function deferred() {
  let resolve = () => {};
  let reject = (_: unknown) => {};
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
