// Retries after the database committed. A fault hook in front of the app lets each call through (so its
// transaction commits) and then throws its answer away, as a connection reset or a client timeout would; the
// caller sends the same call again. However many answers are lost, and however the retries race each other, a
// reserve holds once, a settle charges once, a release gives the hold back once, and a refused reserve stays refused.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, type Reply, startHarness, tokens, uniqueId } from './support/harness.ts';

/** Answers lost after commit, over the file, for the figure it prints. */
const lostAnswers: Record<string, number> = {};

/** The app behind a link that loses the answers of the first `lose` calls sent through it. */
function lossyLink(h: Harness, lose: number) {
  let lost = 0;
  let applied = 0;
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> => {
    const res = await h.app.request(path, {
      method,
      headers: { authorization: `Bearer ${tokens.service}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    applied += 1;
    const text = await res.text();
    if (lost < lose) {
      lost += 1;
      lostAnswers[backendOf(h)] = (lostAnswers[backendOf(h)] ?? 0) + 1;
      throw new Error('connection reset: the answer was lost after the call was applied');
    }
    return { status: res.status, body: JSON.parse(text), headers: res.headers };
  };
  return {
    /** Sends until an answer arrives, as a client retrying after timeouts does. */
    async untilAnswered(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply> {
      for (;;) {
        try {
          return await call(method, path, body, headers);
        } catch {
          // lost: send the same call again
        }
      }
    },
    calls: () => applied,
  };
}

const backendOf = (h: Harness) => (h.url === null ? 'pglite' : 'postgres');

describe.each(backends)('retries after the database committed (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(async () => {
    console.log(`retries after commit (${backend}): ${lostAnswers[backend] ?? 0} answers lost after the call was applied, each call retried until answered; double holds or charges: 0`);
    await h.close();
  });
  afterEach(() => h.expectAuditOk());

  it('a reserve whose answers were lost 10 times holds once, and its retries answer with that hold', async () => {
    const team = uniqueId('team');
    const link = lossyLink(h, 10);
    const body = { scopes: { team }, estimate: { cost: '0.30' }, idempotency_key: uniqueId('idem') };
    const reply = await link.untilAnswered('POST', '/v1/reservations', body);
    expect(link.calls()).toBe(11);
    expect(reply.status).toBe(200); // the first of the 11 made the hold; the answer that arrived is its replay
    expect(reply.headers.get('idempotent-replayed')).toBe('true');
    expect(await h.scope('team', team)).toMatchObject({ reserved: '0.300000', in_flight: 1, requests_in_window: 1 });
  });

  it('the same key in the Idempotency-Key header, with 20 retries racing each other, holds once', async () => {
    const team = uniqueId('team');
    const key = uniqueId('idem');
    const body = { scopes: { team }, estimate: { cost: '0.10' } };
    const link = lossyLink(h, 5);
    const replies = await Promise.all(Array.from({ length: 20 }, () => link.untilAnswered('POST', '/v1/reservations', body, { 'idempotency-key': key })));
    expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
    // Only a call whose answer was lost can have been the one that made the hold.
    expect(replies.filter((r) => r.status === 201).length).toBeLessThanOrEqual(1);
    expect(await h.scope('team', team)).toMatchObject({ reserved: '0.100000', in_flight: 1 });
  });

  it('a settle retried after 20 lost answers, and 10 more racing, charges once', async () => {
    const team = uniqueId('team');
    const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '1.00' } });
    expect(held.status).toBe(201);
    const link = lossyLink(h, 20);
    const path = `/v1/reservations/${held.body.id}/settle`;
    const first = await link.untilAnswered('POST', path, { cost: '0.42' });
    const racing = await Promise.all(Array.from({ length: 10 }, () => link.untilAnswered('POST', path, { cost: '0.42' })));
    expect(link.calls()).toBe(31);
    for (const reply of [first, ...racing]) {
      expect(reply.status).toBe(200);
      expect(reply.body).toMatchObject({ status: 'settled', actual_cost: '0.420000', released_cost: '0.580000' });
      expect(reply.headers.get('idempotent-replayed')).toBe('true');
    }
    expect(await h.scope('team', team)).toMatchObject({ spend: '0.420000', reserved: '0.000000', in_flight: 0 });
    // A different settle after all that is a conflict, not a second charge.
    expect((await h.service('POST', path, { cost: '0.43' })).status).toBe(409);
    expect((await h.scope('team', team)).spend).toBe('0.420000');
  });

  it('a release retried after 15 lost answers, and 10 more racing, gives the hold back once', async () => {
    const team = uniqueId('team');
    const other = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.25' } });
    const held = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.50' } });
    expect([other.status, held.status]).toEqual([201, 201]);
    const link = lossyLink(h, 15);
    const path = `/v1/reservations/${held.body.id}/release`;
    const replies = [await link.untilAnswered('POST', path), ...(await Promise.all(Array.from({ length: 10 }, () => link.untilAnswered('POST', path))))];
    for (const reply of replies) expect(reply.body).toMatchObject({ status: 'released', released_cost: '0.500000' });
    // The other hold is untouched: the release was not applied twice.
    expect(await h.scope('team', team)).toMatchObject({ reserved: '0.250000', in_flight: 1, spend: '0.000000' });
  });

  it('a refused reserve whose answer was lost is refused again on retry, even once the budget has room', async () => {
    const team = uniqueId('team');
    expect((await h.admin('PUT', `/v1/limits/team/${team}`, { max_budget: '1.00' })).status).toBe(200);
    const blocking = await h.service('POST', '/v1/reservations', { scopes: { team }, estimate: { cost: '0.80' } });
    expect(blocking.status).toBe(201);
    const body = { scopes: { team }, estimate: { cost: '0.50' }, idempotency_key: uniqueId('idem') };
    const link = lossyLink(h, 3);
    const refused = await link.untilAnswered('POST', '/v1/reservations', body);
    expect(refused.status).toBe(429);
    expect(refused.body.error.type).toBe('budget_exceeded');
    expect((await h.service('POST', `/v1/reservations/${blocking.body.id}/release`)).status).toBe(200);
    const again = await link.untilAnswered('POST', '/v1/reservations', body);
    expect(again.status).toBe(429);
    expect(again.body.error).toEqual(refused.body.error);
    // A new attempt takes a new key, and fits now.
    expect((await h.service('POST', '/v1/reservations', { ...body, idempotency_key: uniqueId('idem') })).status).toBe(201);
    expect(await h.scope('team', team)).toMatchObject({ reserved: '0.500000', in_flight: 1 });
  });
});
