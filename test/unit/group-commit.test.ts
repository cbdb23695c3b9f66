import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../lib/config.ts';
import { DatabaseUnavailable } from '../../lib/db.ts';
import { groupCommit } from '../../lib/group-commit.ts';

/** A database stand-in whose statements finish when the test says so, recording what was sent. */
function fakeDatabase(failBatch: (items: number[]) => unknown = () => null) {
  const sent: number[][] = [];
  const pending: Array<() => void> = [];
  const finishOne = () => pending.shift()?.();
  const later = <T>(answer: () => T) => new Promise<T>((resolve, reject) => pending.push(() => {
    try {
      resolve(answer());
    } catch (error) {
      reject(error);
    }
  }));
  return {
    sent,
    pendingCount: () => pending.length,
    finishOne,
    runOne: (item: number) => {
      sent.push([item]);
      return later(() => item * 10);
    },
    runBatch: (items: number[]) => {
      sent.push(items);
      return later(() => {
        const error = failBatch(items);
        if (error) throw error;
        return items.map((item) => item * 10);
      });
    },
  };
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('groupCommit', () => {
  it('sends a call at once while a slot is free, and groups the calls that wait, in order', async () => {
    const db = fakeDatabase();
    const call = groupCommit(db.runOne, db.runBatch, { maxBatch: 3, maxInFlight: 1 });
    const answers = [1, 2, 3, 4, 5, 6].map((n) => call(n));
    await flush();
    expect(db.sent).toEqual([[1]]);
    db.finishOne();
    await flush();
    expect(db.sent).toEqual([[1], [2, 3, 4]]);
    db.finishOne();
    await flush();
    expect(db.sent).toEqual([[1], [2, 3, 4], [5, 6]]);
    db.finishOne();
    expect(await Promise.all(answers)).toEqual([10, 20, 30, 40, 50, 60]);
  });

  it('keeps up to maxInFlight batches going at once', async () => {
    const db = fakeDatabase();
    const call = groupCommit(db.runOne, db.runBatch, { maxBatch: 10, maxInFlight: 2 });
    const answers = [1, 2, 3, 4].map((n) => call(n));
    await flush();
    expect(db.sent).toEqual([[1], [2]]);
    expect(db.pendingCount()).toBe(2);
    db.finishOne();
    await flush();
    expect(db.sent).toEqual([[1], [2], [3, 4]]);
    db.finishOne();
    db.finishOne();
    expect(await Promise.all(answers)).toEqual([10, 20, 30, 40]);
  });

  it.each([
    ['an error in one of its calls', Object.assign(new Error('invalid input syntax for type integer'), { code: '22P02' })],
    ['a lock it could not get in time', new DatabaseUnavailable('database busy (55P03)')],
  ])('runs the calls of a batch rolled back by %s again one by one, each with its own outcome', async (_, error) => {
    const db = fakeDatabase(() => error);
    const call = groupCommit(db.runOne, db.runBatch, { maxBatch: 10, maxInFlight: 1 });
    const answers = [1, 2, 3].map((n) => call(n));
    await flush();
    db.finishOne();
    await flush();
    expect(db.sent).toEqual([[1], [2, 3]]);
    db.finishOne();
    await flush();
    expect(db.sent).toEqual([[1], [2, 3], [2], [3]]);
    db.finishOne();
    db.finishOne();
    expect(await Promise.all(answers)).toEqual([10, 20, 30]);
  });

  it.each([
    ['lost the connection after it was sent (it may have committed)', new DatabaseUnavailable('database connection lost (ECONNRESET)', { outcomeUnknown: true })],
    ['could not reach the database', new DatabaseUnavailable('database unreachable (ECONNREFUSED)', { unreachable: true })],
    ['failed after the database answered (it committed)', new Error('2 results for 3 calls')],
  ])('gives every call of a batch that %s that failure, unretried', async (_, failure) => {
    const db = fakeDatabase(() => failure);
    const call = groupCommit(db.runOne, db.runBatch, { maxBatch: 10, maxInFlight: 1 });
    const answers = [1, 2, 3].map((n) => call(n).catch((error: unknown) => error));
    await flush();
    db.finishOne();
    await flush();
    db.finishOne();
    expect(await Promise.all(answers)).toEqual([10, failure, failure]);
    expect(db.sent).toEqual([[1], [2, 3]]);
  });

  it('sends the next batch before handing out the answers of the last, so the database does not wait on their callers', async () => {
    const db = fakeDatabase();
    const call = groupCommit(db.runOne, db.runBatch, { maxBatch: 10, maxInFlight: 1 });
    const sentWhenAnswered = new Map<number, number[][]>();
    const answers = [1, 2, 3, 4].map((n) => call(n).then((answer) => {
      sentWhenAnswered.set(n, db.sent.map((items) => [...items]));
      return answer;
    }));
    await flush();
    db.finishOne();
    await flush();
    expect(sentWhenAnswered.get(1)).toEqual([[1], [2, 3, 4]]);
    const more = [5, 6].map((n) => call(n).then((answer) => {
      sentWhenAnswered.set(n, db.sent.map((items) => [...items]));
      return answer;
    }));
    db.finishOne();
    await flush();
    expect(sentWhenAnswered.get(2)).toEqual([[1], [2, 3, 4], [5, 6]]);
    db.finishOne();
    expect(await Promise.all([...answers, ...more])).toEqual([10, 20, 30, 40, 50, 60]);
  });

  it('a batch stuck behind a lock gives up its slot after a while, so that calls on other scopes go on', async () => {
    const db = fakeDatabase();
    const call = groupCommit(db.runOne, db.runBatch, { maxBatch: 10, maxInFlight: 1 });
    const stuck = call(1);
    const other = call(2);
    await flush();
    expect(db.sent).toEqual([[1]]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(db.sent).toEqual([[1], [2]]);
    db.finishOne();
    db.finishOne();
    expect(await Promise.all([stuck, other])).toEqual([10, 20]);
  });

  it('with maxBatch 1, every call goes alone', async () => {
    const db = fakeDatabase();
    const call = groupCommit(db.runOne, db.runBatch, { maxBatch: 1, maxInFlight: 1 });
    const answers = [1, 2, 3].map((n) => call(n));
    for (let i = 0; i < 3; i++) {
      await flush();
      db.finishOne();
    }
    expect(await Promise.all(answers)).toEqual([10, 20, 30]);
    expect(db.sent).toEqual([[1], [2], [3]]);
  });
});

describe('group commit settings', () => {
  const tokens = { SPENDGATE_ADMIN_TOKEN: 'admin-token-0123456789', SPENDGATE_SERVICE_TOKEN: 'service-token-0123456789' };
  const config = (env: Record<string, string>) => loadConfig({ ...tokens, ...env }, { allowGeneratedTokens: false });

  it('defaults to batches of 32, one at a time, and takes SPENDGATE_BATCH_MAX and SPENDGATE_BATCH_CONCURRENCY', () => {
    expect(config({}).groupCommit).toEqual({ maxBatch: 32, maxInFlight: 1 });
    expect(config({ SPENDGATE_BATCH_MAX: '1', SPENDGATE_BATCH_CONCURRENCY: '16' }).groupCommit).toEqual({ maxBatch: 1, maxInFlight: 16 });
  });

  it.each(['0', '-1', '2.5', 'many', '1001'])('refuses %s, naming the variable', (bad) => {
    expect(() => config({ SPENDGATE_BATCH_MAX: bad })).toThrow(ConfigError);
    expect(() => config({ SPENDGATE_BATCH_MAX: bad })).toThrow(/SPENDGATE_BATCH_MAX must be a whole number from 1 to 1000/);
    expect(() => config({ SPENDGATE_BATCH_CONCURRENCY: bad })).toThrow(/SPENDGATE_BATCH_CONCURRENCY/);
  });
});
