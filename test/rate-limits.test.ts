// Rate limits over HTTP with the manual clock: RPM, TPM (and ITPM/OTPM), max_parallel, model-scoped limits, the
// headers and the 429 details, and the rate window's length. Nothing sleeps: the clock is moved by hand.
//
// The windows are fixed windows of 60 s aligned to the epoch, read with the two-window weighted approximation
// (spendgate.window_used): used = prev × (60 − e) / 60 + cur, where e is the seconds elapsed in the current window.
// spendgate.window_wait gives Retry-After:
//   cur + need ≤ lim:  wait = 60 − e − (lim − need − cur) × 60 / prev
//   otherwise:         wait = (60 − e) + max(0, 60 − (lim − need) × 60 / cur)
// rounded up, and at least 1.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, type Reply, startHarness, uniqueId } from './support/harness.ts';

const WINDOW = 60;

// gpt-4o (o200k_base) with one user message "hi": 1 token + 4 per message + 3 priming = 8 input tokens.
const hi = (maxTokens?: number) => ({
  messages: [{ role: 'user', content: 'hi' }],
  ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
});
const HI_INPUT = 8;

/**
 * Moves the clock forward to `offset` seconds into a rate window that starts after now (at least one whole
 * window later, so the new window's previous window is empty for scopes only used before). Returns the window's
 * start in ms.
 */
function freshWindow(h: Harness, offset: number, window = WINDOW): number {
  const now = h.clock.now()!.getTime();
  const start = (Math.floor(now / (window * 1000)) + 2) * window * 1000;
  h.clock.set(new Date(start + offset * 1000));
  return start;
}

/** Moves the clock to `seconds` after the window start `w`, never backwards. */
function at(h: Harness, w: number, seconds: number): void {
  const target = w + seconds * 1000;
  if (target < h.clock.now()!.getTime()) throw new Error('the clock may only move forward');
  h.clock.set(new Date(target));
}

function tally(replies: readonly Reply[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const reply of replies) counts[reply.status] = (counts[reply.status] ?? 0) + 1;
  return counts;
}

/** The x-ratelimit-* headers of a reply, as a plain object. */
function rateHeaders(reply: Reply): Record<string, string> {
  const out: Record<string, string> = {};
  reply.headers.forEach((value, name) => {
    if (name.startsWith('x-ratelimit-')) out[name] = value;
  });
  return out;
}

describe.each(backends)('rate limits (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  const reserve = (body: unknown) => h.service('POST', '/v1/reservations', body);
  const cheap = (scopes: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    reserve({ scopes, estimate: { cost: '0.001' }, ...extra });

  describe('RPM', () => {
    it('rpm 3 admits 3, refuses the 4th with the exact Retry-After, and admits again as the window slides', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { rpm: 3 })).status).toBe(200);
      const w = freshWindow(h, 10);
      expect((await cheap({ key })).status).toBe(201); // W+10
      at(h, w, 20);
      expect((await cheap({ key })).status).toBe(201); // W+20
      at(h, w, 30);
      expect((await cheap({ key })).status).toBe(201); // W+30

      at(h, w, 40);
      const fourth = await cheap({ key });
      expect(fourth.status).toBe(429);
      expect(fourth.body.error).toMatchObject({
        type: 'rate_limit_exceeded', scope: { kind: 'key', id: key }, limit_type: 'rpm', limit: 3, used: 3, requested: 1,
      });
      // prev 0, cur 3, need 1, e = 40: cur + need > lim, so
      // wait = (60 − 40) + max(0, 60 − (3 − 1) × 60 / 3) = 20 + 20 = 40.
      expect(fourth.headers.get('retry-after')).toBe('40');
      expect(fourth.body.error.message).toContain('Retry in 40 s.');

      // W+79, one second early: the window has turned (e = 19) and prev = 3 weighs 3 × 41/60 = 2.05, so 2.05 + 1 > 3.
      at(h, w, 79);
      const early = await cheap({ key });
      expect(early.status).toBe(429);
      expect(early.body.error).toMatchObject({ limit_type: 'rpm', used: 3 }); // ceil(2.05)
      // prev 3, cur 0, need 1, e = 19: cur + need ≤ lim, so wait = 60 − 19 − (3 − 1 − 0) × 60 / 3 = 41 − 40 = 1.
      expect(early.headers.get('retry-after')).toBe('1');

      // W+80, exactly the Retry-After: 3 × 40/60 = 2, and 2 + 1 ≤ 3.
      at(h, w, 80);
      const again = await cheap({ key });
      expect(again.status).toBe(201);
      expect(again.body.scopes[0]).toMatchObject({ requests_in_window: 3, requests_remaining: 0 });

      // Now prev 3, cur 1 at e = 20: 2 + 1 = 3, full again. wait = 60 − 20 − (3 − 1 − 1) × 60 / 3 = 40 − 20 = 20.
      const fifth = await cheap({ key });
      expect(fifth.status).toBe(429);
      expect(fifth.headers.get('retry-after')).toBe('20');
      at(h, w, 99);
      expect((await cheap({ key })).status).toBe(429); // 3 × 21/60 + 1 = 2.05
      at(h, w, 100);
      expect((await cheap({ key })).status).toBe(201); // 3 × 20/60 + 1 = 2
      expect(await h.scope('key', key)).toMatchObject({ requests_in_window: 3, in_flight: 5 });
    });

    it('the weighted window lets through at most one extra window\'s worth, and never more', async () => {
      // README: across a boundary the approximation can admit up to one more window's worth than a true sliding
      // window. Worst case: a full burst in the last second of a window. With rpm L = 10 and the burst at W+59, in
      // the next window at e seconds used = 10 × (60 − e)/60 + cur, so cur may grow to floor(10e/60) = floor(e/6):
      // one admission every 6 s, at W+66, W+72, ..., W+114 (9 of them). A true sliding window admits none of them
      // (the burst is still inside the trailing 60 s until W+119): 10 + 9 = 19 = 2L − 1 in 60 s, bounded by 2L.
      const L = 10;
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { rpm: L })).status).toBe(200);
      const w = freshWindow(h, 59);
      const admitted: number[] = []; // seconds after W of each admission

      // A greedy client: every second, as many requests as are admitted, for three windows.
      for (let s = 59; s < 59 + 3 * WINDOW; s++) {
        at(h, w, s);
        for (let tries = 0; tries <= L; tries++) {
          const reply = await cheap({ key });
          if (reply.status === 429) {
            expect(reply.body.error).toMatchObject({ limit_type: 'rpm', limit: L });
            break;
          }
          expect(reply.status).toBe(201);
          admitted.push(s);
        }
      }

      // The burst, then the next window exactly as computed above.
      expect(admitted.filter((s) => s === 59)).toHaveLength(L);
      expect(admitted.filter((s) => s >= 60 && s < 120)).toEqual([66, 72, 78, 84, 90, 96, 102, 108, 114]);
      // The window after (prev = 9): cur may reach 1 + floor(9e/60): at e = 0, 7, 14, 20, 27, 34, 40, 47, 54.
      expect(admitted.filter((s) => s >= 120 && s < 180)).toEqual([120, 127, 134, 140, 147, 154, 160, 167, 174]);

      // Never more than L in one fixed window.
      for (const start of [0, 60, 120, 180]) {
        expect(admitted.filter((s) => s >= start && s < start + WINDOW).length).toBeLessThanOrEqual(L);
      }
      // In any 60 s (the trailing minute of each admission), at most 2L − 1; the worst case reaches it at W+114.
      const trailing = admitted.map((t) => admitted.filter((s) => s > t - WINDOW && s <= t).length);
      expect(Math.max(...trailing)).toBe(2 * L - 1);
      expect(trailing[admitted.lastIndexOf(114)]).toBe(2 * L - 1);
      expect(Math.max(...trailing)).toBeLessThanOrEqual(2 * L);
    });
  });

  describe('TPM', () => {
    it('tpm 100: five simultaneous holds of 50 tokens admit exactly two', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 100 })).status).toBe(200);
      freshWindow(h, 5);
      const replies = await Promise.all(
        Array.from({ length: 5 }, () => reserve({ scopes: { key }, estimate: { cost: '0.01', tokens: 50 } })),
      );
      expect(tally(replies)).toEqual({ 201: 2, 429: 3 });
      for (const refused of replies.filter((r) => r.status === 429)) {
        expect(refused.body.error).toMatchObject({ type: 'rate_limit_exceeded', limit_type: 'tpm', limit: 100, used: 100, requested: 50 });
      }
      for (const held of replies.filter((r) => r.status === 201)) expect(held.body.reserved_tokens).toBe(50);
      expect(await h.scope('key', key)).toMatchObject({ tokens_in_window: 100, tokens_remaining: 0, in_flight: 2 });
    });

    it('settle reconciles to the actual tokens: a small usage frees room for the next request', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 100 })).status).toBe(200);
      freshWindow(h, 5);
      // Each holds 8 input + 32 output = 40 tokens.
      const body = { scopes: { key }, model: 'gpt-4o', request: hi(32) };
      const a = await reserve(body);
      const b = await reserve(body);
      expect([a.status, b.status]).toEqual([201, 201]);
      expect(a.body).toMatchObject({ reserved_tokens: 40, reserved_input_tokens: HI_INPUT, reserved_output_tokens: 32 });
      const refused = await reserve(body);
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ limit_type: 'tpm', used: 80, requested: 40 }); // 80 + 40 > 100

      const settled = await h.service('POST', `/v1/reservations/${a.body.id}/settle`, { usage: { prompt_tokens: 8, completion_tokens: 2 } });
      expect(settled.status).toBe(200);
      expect(settled.body).toMatchObject({ actual_tokens: 10, actual_input_tokens: 8, actual_output_tokens: 2 });
      // 80 − 40 + 10 = 50 in the window: 40 more fit.
      expect(await h.scope('key', key)).toMatchObject({ tokens_in_window: 50, tokens_remaining: 50 });
      const next = await reserve(body);
      expect(next.status).toBe(201);
      expect(next.body.scopes[0]).toMatchObject({ tokens_in_window: 90, tokens_remaining: 10 });
    });

    it('settle in the next window reconciles the window the hold was counted in', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 1000 })).status).toBe(200);
      const w = freshWindow(h, 50);
      const held = await reserve({ scopes: { key }, model: 'gpt-4o', request: hi(32) }); // 40 tokens at W+50
      expect(held.status).toBe(201);
      at(h, w, 70); // e = 10 in the next window
      // Unsettled, the previous window's 40 weigh 40 × 50/60 = 33.3 → 34.
      expect(await h.scope('key', key)).toMatchObject({ tokens_in_window: 34 });
      const settled = await h.service('POST', `/v1/reservations/${held.body.id}/settle`, { usage: { prompt_tokens: 8, completion_tokens: 2 } });
      expect(settled.body.actual_tokens).toBe(10);
      // Replaced in the previous window: 10 × 50/60 = 8.3 → 9; the current window holds none of it.
      expect(await h.scope('key', key)).toMatchObject({ tokens_in_window: 9, tokens_remaining: 991 });
      const [row] = await h.db.query<{ tokens_cur: string; tokens_prev: string }>(
        `select tokens_cur::text, tokens_prev::text from spendgate.counters where kind = 'key' and id = $1 and model = ''`, [key]);
      expect(row).toEqual({ tokens_cur: '0', tokens_prev: '10' });
    });

    it('release refunds the held tokens', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 100 })).status).toBe(200);
      freshWindow(h, 5);
      const body = { scopes: { key }, model: 'gpt-4o', request: hi(32) };
      const a = await reserve(body);
      const b = await reserve(body);
      expect([a.status, b.status]).toEqual([201, 201]);
      expect((await reserve(body)).status).toBe(429);
      const released = await h.service('POST', `/v1/reservations/${b.body.id}/release`);
      expect(released.body.status).toBe('released');
      expect(await h.scope('key', key)).toMatchObject({ tokens_in_window: 40, tokens_remaining: 60, requests_in_window: 2 });
      expect((await reserve(body)).status).toBe(201);
      expect(await h.scope('key', key)).toMatchObject({ tokens_in_window: 80 });
    });

    it.each([
      { sweep: true },
      { sweep: false },
    ])('expiry refunds the held tokens (sweep first: $sweep)', async ({ sweep }) => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 100 })).status).toBe(200);
      const w = freshWindow(h, 5);
      const short = await reserve({ scopes: { key }, model: 'gpt-4o', request: hi(32), ttl_seconds: 30 });
      const long = await reserve({ scopes: { key }, model: 'gpt-4o', request: hi(32), ttl_seconds: 600 });
      expect([short.status, long.status]).toEqual([201, 201]);
      expect((await reserve({ scopes: { key }, model: 'gpt-4o', request: hi(32) })).status).toBe(429);

      at(h, w, 35); // past the short hold's expiry (W+5 + 30 s), same window
      if (sweep) {
        const swept = await h.as('cron')('POST', '/v1/sweep');
        expect(swept.body.expired).toBeGreaterThanOrEqual(1);
      }
      // Reads show it back whether or not it has been written yet.
      expect(await h.scope('key', key)).toMatchObject({ tokens_in_window: 40, in_flight: 1 });
      const next = await reserve({ scopes: { key }, model: 'gpt-4o', request: hi(32) });
      expect(next.status).toBe(201);
      expect(next.body.scopes[0]).toMatchObject({ tokens_in_window: 80, in_flight: 2 });
      expect((await h.service('GET', `/v1/reservations/${short.body.id}`)).body.status).toBe('expired');
    });

    it('cached prompt tokens do not count at settle (OpenAI cached_tokens, Anthropic cache_read_input_tokens)', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 10000, itpm: 10000, otpm: 10000 })).status).toBe(200);
      freshWindow(h, 5);
      const openai = await reserve({ scopes: { key }, model: 'gpt-4o', request: hi(32) });
      // 100 prompt tokens of which 60 cached: 40 count, + 5 output = 45.
      const o = await h.service('POST', `/v1/reservations/${openai.body.id}/settle`, {
        usage: { prompt_tokens: 100, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 60 } },
      });
      expect(o.body).toMatchObject({ actual_tokens: 45, actual_input_tokens: 40, actual_output_tokens: 5 });

      // claude-haiku-4-5 counts input by UTF-8 bytes: "hi" 2 + 4 + 3 = 9.
      const anthropic = await reserve({ scopes: { key }, model: 'claude-haiku-4-5', request: hi(32) });
      expect(anthropic.body).toMatchObject({ reserved_input_tokens: 9, reserved_tokens: 41 });
      // 30 uncached + 20 cache writes count; the 500 cache reads do not: 50 input + 7 output = 57.
      const a = await h.service('POST', `/v1/reservations/${anthropic.body.id}/settle`, {
        usage: { input_tokens: 30, cache_read_input_tokens: 500, cache_creation_input_tokens: 20, output_tokens: 7 },
      });
      expect(a.body).toMatchObject({ actual_tokens: 57, actual_input_tokens: 50, actual_output_tokens: 7 });
      expect(await h.scope('key', key)).toMatchObject({
        tokens_in_window: 45 + 57, input_tokens_in_window: 40 + 50, output_tokens_in_window: 5 + 7,
      });
    });
  });

  describe('ITPM and OTPM', () => {
    it('itpm: reserved, reconciled at settle, refunded on release, refusing with limit_type itpm', async () => {
      const key = uniqueId('key');
      // 8 input tokens a request: one fits in 12, a second does not.
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { itpm: 12 })).status).toBe(200);
      freshWindow(h, 5);
      const body = { scopes: { key }, model: 'gpt-4o', request: hi(32) };
      const a = await reserve(body);
      expect(a.status).toBe(201);
      expect(a.body.scopes[0]).toMatchObject({ itpm: 12, input_tokens_in_window: 8, input_tokens_remaining: 4, output_tokens_in_window: 32 });
      const refused = await reserve(body);
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({
        type: 'rate_limit_exceeded', scope: { kind: 'key', id: key }, limit_type: 'itpm', limit: 12, used: 8, requested: 8,
      });
      expect(refused.body.error.message).toContain('input tokens');

      // Settled with 3 input tokens: 3 + 8 ≤ 12.
      const settled = await h.service('POST', `/v1/reservations/${a.body.id}/settle`, { usage: { prompt_tokens: 3, completion_tokens: 1 } });
      expect(settled.body).toMatchObject({ actual_input_tokens: 3, actual_output_tokens: 1 });
      expect(await h.scope('key', key)).toMatchObject({ input_tokens_in_window: 3, output_tokens_in_window: 1 });
      const b = await reserve(body);
      expect(b.status).toBe(201);
      expect(b.body.scopes[0]).toMatchObject({ input_tokens_in_window: 11 });
      expect((await reserve(body)).status).toBe(429);

      // Released: its 8 come back.
      expect((await h.service('POST', `/v1/reservations/${b.body.id}/release`)).status).toBe(200);
      expect(await h.scope('key', key)).toMatchObject({ input_tokens_in_window: 3, input_tokens_remaining: 9 });
      expect((await reserve(body)).status).toBe(201);
    });

    it('otpm: reserved, reconciled at settle, refunded on release, refusing with limit_type otpm', async () => {
      const key = uniqueId('key');
      // 32 output tokens a request: one fits in 50, a second does not.
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { otpm: 50 })).status).toBe(200);
      freshWindow(h, 5);
      const body = { scopes: { key }, model: 'gpt-4o', request: hi(32) };
      const a = await reserve(body);
      expect(a.status).toBe(201);
      expect(a.body.scopes[0]).toMatchObject({ otpm: 50, output_tokens_in_window: 32, output_tokens_remaining: 18 });
      const refused = await reserve(body);
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({
        type: 'rate_limit_exceeded', scope: { kind: 'key', id: key }, limit_type: 'otpm', limit: 50, used: 32, requested: 32,
      });
      expect(refused.body.error.message).toContain('output tokens');

      const settled = await h.service('POST', `/v1/reservations/${a.body.id}/settle`, { usage: { prompt_tokens: 8, completion_tokens: 10 } });
      expect(settled.body.actual_output_tokens).toBe(10);
      expect(await h.scope('key', key)).toMatchObject({ output_tokens_in_window: 10, output_tokens_remaining: 40 });
      const b = await reserve(body);
      expect(b.status).toBe(201);
      expect(b.body.scopes[0]).toMatchObject({ output_tokens_in_window: 42 });
      expect((await reserve(body)).status).toBe(429);

      expect((await h.service('POST', `/v1/reservations/${b.body.id}/release`)).status).toBe(200);
      expect(await h.scope('key', key)).toMatchObject({ output_tokens_in_window: 10 });
      expect((await reserve(body)).status).toBe(201);
    });
  });

  describe('output cap', () => {
    it('without max_tokens, tpm 4000 holds output = 1000 and says so in estimate.output_tokens_cap', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 4000 })).status).toBe(200);
      freshWindow(h, 5);
      const held = await reserve({ scopes: { key }, model: 'gpt-4o', request: hi() });
      expect(held.status).toBe(201);
      // 4000 / 4 = 1000, under the 16384 a request without max_tokens would hold.
      expect(held.body).toMatchObject({ reserved_output_tokens: 1000, reserved_input_tokens: HI_INPUT, reserved_tokens: 1008 });
      expect(held.body.estimate).toMatchObject({ output_tokens_cap: 1000, output_tokens_source: 'default' });
      expect(held.body.scopes[0]).toMatchObject({ tokens_in_window: 1008 });

      // With max_tokens the request's own limit stands, uncapped.
      const asked = await reserve({ scopes: { key }, model: 'gpt-4o', request: hi(2000) });
      expect(asked.status).toBe(201);
      expect(asked.body.reserved_output_tokens).toBe(2000);
      expect(asked.body.estimate.output_tokens_cap).toBeUndefined();
    });

    it('the cap is a quarter of the smallest limit that counts output tokens, over every scope named', async () => {
      const key = uniqueId('key');
      const team = uniqueId('team');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 4000 })).status).toBe(200);
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, { otpm: 400 })).status).toBe(200);
      freshWindow(h, 5);
      const held = await reserve({ scopes: { key, team }, model: 'gpt-4o', request: hi() });
      expect(held.status).toBe(201);
      expect(held.body).toMatchObject({ reserved_output_tokens: 100, reserved_tokens: 108 }); // 400 / 4
      expect(held.body.estimate.output_tokens_cap).toBe(100);

      // No limit on tokens at all: nothing is capped.
      const free = await reserve({ scopes: { key: uniqueId('key') }, model: 'gpt-4o', request: hi() });
      expect(free.body).toMatchObject({ reserved_output_tokens: 16384 });
      expect(free.body.estimate.output_tokens_cap).toBeUndefined();
    });
  });

  describe('max_parallel', () => {
    it('parallel 2 refuses a third until one finishes: settle, release and expiry each free a slot', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { max_parallel: 2 })).status).toBe(200);
      const w = freshWindow(h, 5);
      const a = await cheap({ key });
      const b = await cheap({ key });
      expect([a.status, b.status]).toEqual([201, 201]);
      const third = await cheap({ key });
      expect(third.status).toBe(429);
      expect(third.body.error).toMatchObject({ type: 'parallel_limit_exceeded', scope: { kind: 'key', id: key }, limit_type: 'max_parallel', limit: 2, used: 2 });
      // Retry-After: until the first live hold expires if nobody settles or releases (an upper bound). Both were
      // held at W+5 for the default 600 s.
      expect(third.headers.get('retry-after')).toBe('600');
      expect(third.body.error.message).toContain('Retry in 600 s at the latest');

      // Settle frees a's slot.
      expect((await h.service('POST', `/v1/reservations/${a.body.id}/settle`, { cost: '0.001' })).status).toBe(200);
      const c = await cheap({ key }, { ttl_seconds: 30 });
      expect(c.status).toBe(201);
      // The earliest expiry, not the oldest hold: c (W+35) goes before b (W+605).
      expect((await cheap({ key })).headers.get('retry-after')).toBe('30');

      // Release frees b's.
      expect((await h.service('POST', `/v1/reservations/${b.body.id}/release`)).status).toBe(200);
      const d = await cheap({ key });
      expect(d.status).toBe(201);
      expect((await cheap({ key })).status).toBe(429);
      expect(await h.scope('key', key)).toMatchObject({ in_flight: 2 });

      // c's caller is gone: its hold expires after 30 s, and its slot with it (no sweeper needed).
      at(h, w, 5 + 29);
      const early = await cheap({ key });
      expect(early.status).toBe(429);
      expect(early.headers.get('retry-after')).toBe('1');
      at(h, w, 5 + 30);
      expect(await h.scope('key', key)).toMatchObject({ in_flight: 1 });
      expect((await cheap({ key })).status).toBe(201);
      expect((await h.service('GET', `/v1/reservations/${c.body.id}`)).body.status).toBe('expired');
    });

    it('over a lowered max_parallel, Retry-After waits for as many expiries as must free; max_parallel 0 has none', async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { max_parallel: 3 })).status).toBe(200);
      const w = freshWindow(h, 5);
      for (const ttl of [100, 50, 200]) expect((await cheap({ key }, { ttl_seconds: ttl })).status).toBe(201);

      // 3 live holds, max_parallel 2: two must go before a fourth fits, the second expiry at W+105.
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { max_parallel: 2 })).status).toBe(200);
      at(h, w, 10);
      const refused = await cheap({ key });
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ type: 'parallel_limit_exceeded', limit: 2, used: 3 });
      expect(refused.headers.get('retry-after')).toBe('95');
      at(h, w, 104);
      expect((await cheap({ key })).headers.get('retry-after')).toBe('1');
      at(h, w, 105);
      expect((await cheap({ key })).status).toBe(201);

      // max_parallel 0 never admits: no Retry-After, and the message says so.
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { max_parallel: 0 })).status).toBe(200);
      const never = await cheap({ key });
      expect(never.status).toBe(429);
      expect(never.headers.get('retry-after')).toBeNull();
      expect(never.body.error.message).toContain('Its max_parallel is 0');
    });
  });

  describe('Retry-After of token limits', () => {
    // gpt-4o "hi" with max_tokens 32 holds 8 input + 32 output = 40 tokens. Two holds, at W+10 and W+20, then a
    // third refused at W+e. With the current window's count `cur` = two holds and `need` = one, the refused amount
    // fits only in the next window once cur has faded: wait = (60 − e) + max(0, 60 − (lim − need) × 60 / cur).
    // Limits chosen so that the wait is not whole, to see it rounded up: just before it the next request is refused
    // (its wait then comes from the first formula, prev = cur, cur = 0), at it admitted.
    it.each([
      // TPM 110: cur 80, need 40, e = 30: 30 + (60 − 70 × 60/80 = 7.5) = 37.5 → 38 (W+68).
      // At W+67 (e = 7): 80 × 53/60 + 40 = 110.7 > 110; wait = 60 − 7 − 70 × 60/80 = 0.5 → 1.
      // At W+68: 80 × 52/60 + 40 = 109.3 ≤ 110.
      { limit: { tpm: 110 }, type: 'tpm', used: 80, need: 40, e: 30, wait: 38 },
      // ITPM 21: cur 16, need 8, e = 40: 20 + (60 − 13 × 60/16 = 11.25) = 31.25 → 32 (W+72).
      // At W+71 (e = 11): 16 × 49/60 + 8 = 21.07 > 21; wait = 60 − 11 − 48.75 = 0.25 → 1. At W+72: 20.8 ≤ 21.
      { limit: { itpm: 21 }, type: 'itpm', used: 16, need: 8, e: 40, wait: 32 },
      // OTPM 90: cur 64, need 32, e = 25: 35 + (60 − 58 × 60/64 = 5.625) = 40.625 → 41 (W+66).
      // At W+65 (e = 5): 64 × 55/60 + 32 = 90.7 > 90; wait = 60 − 5 − 54.375 = 0.625 → 1. At W+66: 89.6 ≤ 90.
      { limit: { otpm: 90 }, type: 'otpm', used: 64, need: 32, e: 25, wait: 41 },
    ])('$type: the exact Retry-After from the two-window arithmetic', async ({ limit, type, used, need, e, wait }) => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, limit)).status).toBe(200);
      const w = freshWindow(h, 10);
      const body = { scopes: { key }, model: 'gpt-4o', request: hi(32) };
      expect((await reserve(body)).status).toBe(201);
      at(h, w, 20);
      expect((await reserve(body)).status).toBe(201);

      at(h, w, e);
      const refused = await reserve(body);
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({
        type: 'rate_limit_exceeded', scope: { kind: 'key', id: key }, limit_type: type, used, requested: need,
      });
      expect(refused.headers.get('retry-after')).toBe(String(wait));
      expect(refused.body.error.message).toContain(`Retry in ${wait} s.`);

      at(h, w, e + wait - 1);
      const early = await reserve(body);
      expect(early.status).toBe(429);
      expect(early.body.error.limit_type).toBe(type);
      expect(early.headers.get('retry-after')).toBe('1');
      at(h, w, e + wait);
      expect((await reserve(body)).status).toBe(201);
    });
  });

  describe('the audit', () => {
    it.each(['requests_cur', 'tokens_cur'])('catches a tampered %s on a rate counter, and is ok again once restored', async (field) => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { rpm: 100, tpm: 10000 })).status).toBe(200);
      freshWindow(h, 5);
      for (let i = 0; i < 3; i++) {
        expect((await reserve({ scopes: { key }, model: 'gpt-4o', request: hi(32) })).status).toBe(201);
      }
      await h.expectAuditOk();
      // Three holds of 40 tokens in this window.
      const expected = field === 'requests_cur' ? 3 : 120;
      const where = `where kind = 'key' and id = $1 and model = ''`;
      const [row] = await h.db.query<{ value: string }>(`select ${field}::text as value from spendgate.counters ${where}`, [key]);
      expect(row).toEqual({ value: String(expected) });

      await h.db.query(`update spendgate.counters set ${field} = ${field} + 1 ${where}`, [key]);
      const audit = await h.admin('GET', '/v1/audit');
      expect(audit.status).toBe(200);
      expect(audit.body.ok).toBe(false);
      expect(audit.body.mismatches).toEqual([
        { kind: 'key', id: key, field, counter: String(expected + 1), ledger: String(expected) },
      ]);

      await h.db.query(`update spendgate.counters set ${field} = ${field} - 1 ${where}`, [key]);
      await h.expectAuditOk();
    });
  });

  describe('a refused request', () => {
    it('leaves every counter as it was, whichever limit refused it', async () => {
      const team = uniqueId('team');
      const org = uniqueId('org');
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, {
        max_budget: '1', rpm: 5, tpm: 1000, windows: [{ max_budget: '0.5', budget_duration: '1d' }], models: { 'gpt-4o': { rpm: 2 } },
      })).status).toBe(200);
      expect((await h.admin('PUT', `/v1/limits/org/${org}`, { max_parallel: 2 })).status).toBe(200);
      freshWindow(h, 5);
      // Two gpt-4o holds of 40 tokens (cost 8 × 0.0000025 + 32 × 0.00001 = 0.00034 each).
      for (let i = 0; i < 2; i++) {
        expect((await reserve({ scopes: { team, org, key }, model: 'gpt-4o', request: hi(32) })).status).toBe(201);
      }
      const before = await Promise.all([h.scope('team', team), h.scope('org', org), h.scope('key', key)]);
      expect(before[0]).toMatchObject({ reserved: '0.000680', requests_in_window: 2, tokens_in_window: 80, in_flight: 2 });
      expect(before[0].windows[0]).toMatchObject({ reserved: '0.000680', requests_in_window: 2 });
      expect(before[0].models['gpt-4o']).toMatchObject({ requests_in_window: 2, requests_remaining: 0 });

      const newcomer = uniqueId('key');
      const refusals = [
        // The model limit's rpm (2 of 2), with a scope named for the first time.
        { body: { scopes: { team, key: newcomer }, model: 'gpt-4o', request: hi(32) }, type: 'rate_limit_exceeded', limit_type: 'rpm' },
        // Budget window 1: 0.00068 + 0.6 > 0.5.
        { body: { scopes: { team, key }, estimate: { cost: '0.6' } }, type: 'budget_exceeded', limit_type: 'max_budget' },
        // TPM: 80 + 950 > 1000.
        { body: { scopes: { team, key: newcomer }, estimate: { cost: '0.01', tokens: 950 } }, type: 'rate_limit_exceeded', limit_type: 'tpm' },
        // The org's parallel slots.
        { body: { scopes: { team, org, key: newcomer }, estimate: { cost: '0.01' } }, type: 'parallel_limit_exceeded', limit_type: 'max_parallel' },
      ];
      for (const { body, type, limit_type } of refusals) {
        const refused = await reserve(body);
        expect(refused.status).toBe(429);
        expect(refused.body.error).toMatchObject({ type, limit_type });
      }
      expect(await Promise.all([h.scope('team', team), h.scope('org', org), h.scope('key', key)])).toEqual(before);
      expect((await h.service('GET', `/v1/limits/key/${newcomer}`)).status).toBe(404);
    });
  });

  describe('model-scoped limits', () => {
    it('apply to that model only', async () => {
      const team = uniqueId('team');
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, { models: { 'gpt-4o': { rpm: 1 } } })).status).toBe(200);
      freshWindow(h, 5);
      const first = await reserve({ scopes: { team }, model: 'gpt-4o', request: hi(16) });
      expect(first.status).toBe(201);
      expect(first.body.scopes[0].model_limit).toMatchObject({ model: 'gpt-4o', rpm: 1, requests_in_window: 1, requests_remaining: 0 });
      const second = await reserve({ scopes: { team }, model: 'gpt-4o', request: hi(16) });
      expect(second.status).toBe(429);
      expect(second.body.error).toMatchObject({ scope: { kind: 'team', id: team, model: 'gpt-4o' }, limit_type: 'rpm', limit: 1, used: 1 });
      for (let i = 0; i < 3; i++) {
        const mini = await reserve({ scopes: { team }, model: 'gpt-4o-mini', request: hi(16) });
        expect(mini.status).toBe(201);
        expect(mini.body.scopes[0].model_limit).toBeUndefined();
      }
      const read = await h.scope('team', team);
      expect(read).toMatchObject({ rpm: null, requests_in_window: 4 });
      expect(read.models['gpt-4o']).toMatchObject({ requests_in_window: 1 });
    });
  });

  describe('headers and 429 details', () => {
    it('per-scope and OpenAI-style headers on 201 and 429, never negative', async () => {
      const key = uniqueId('key');
      const team = uniqueId('team');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { rpm: 10, tpm: 1000 })).status).toBe(200);
      expect((await h.admin('PUT', `/v1/limits/team/${team}`, { rpm: 5, tpm: 5000 })).status).toBe(200);
      const w = freshWindow(h, 10);
      const body = { scopes: { key, team }, estimate: { cost: '0.01', tokens: 50 } };
      const first = await reserve(body);
      expect(first.status).toBe(201);
      // The tightest scope for requests is the team (4 left), for tokens the key (950 left). Reset: the window
      // forgets this minute's count 2 × 60 − 10 = 110 s from now.
      expect(rateHeaders(first)).toEqual({
        'x-ratelimit-key-limit-requests': '10', 'x-ratelimit-key-remaining-requests': '9',
        'x-ratelimit-team-limit-requests': '5', 'x-ratelimit-team-remaining-requests': '4',
        'x-ratelimit-key-limit-tokens': '1000', 'x-ratelimit-key-remaining-tokens': '950',
        'x-ratelimit-team-limit-tokens': '5000', 'x-ratelimit-team-remaining-tokens': '4950',
        'x-ratelimit-limit-requests': '5', 'x-ratelimit-remaining-requests': '4', 'x-ratelimit-reset-requests': '1m50s',
        'x-ratelimit-limit-tokens': '1000', 'x-ratelimit-remaining-tokens': '950', 'x-ratelimit-reset-tokens': '1m50s',
      });
      for (let i = 0; i < 4; i++) expect((await reserve(body)).status).toBe(201);

      at(h, w, 15);
      const refused = await reserve(body);
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({
        type: 'rate_limit_exceeded', scope: { kind: 'team', id: team }, limit_type: 'rpm', limit: 5, used: 5, requested: 1,
      });
      // prev 0, cur 5, e = 15: wait = (60 − 15) + max(0, 60 − (5 − 1) × 60 / 5) = 45 + 12 = 57.
      expect(refused.headers.get('retry-after')).toBe('57');
      expect(rateHeaders(refused)).toEqual({
        'x-ratelimit-key-limit-requests': '10', 'x-ratelimit-key-remaining-requests': '5',
        'x-ratelimit-team-limit-requests': '5', 'x-ratelimit-team-remaining-requests': '0',
        'x-ratelimit-key-limit-tokens': '1000', 'x-ratelimit-key-remaining-tokens': '750',
        'x-ratelimit-team-limit-tokens': '5000', 'x-ratelimit-team-remaining-tokens': '4750',
        'x-ratelimit-limit-requests': '5', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1m45s',
        'x-ratelimit-limit-tokens': '1000', 'x-ratelimit-remaining-tokens': '750', 'x-ratelimit-reset-tokens': '1m45s',
      });

      // Limits lowered under what is already used: remaining shows 0, not a negative number.
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { rpm: 2, tpm: 100 })).status).toBe(200);
      const over = await reserve(body);
      expect(over.status).toBe(429);
      expect(over.body.error).toMatchObject({ scope: { kind: 'key', id: key }, limit_type: 'rpm', limit: 2, used: 5 });
      expect(rateHeaders(over)).toMatchObject({
        'x-ratelimit-key-limit-requests': '2', 'x-ratelimit-key-remaining-requests': '0',
        'x-ratelimit-key-limit-tokens': '100', 'x-ratelimit-key-remaining-tokens': '0',
        'x-ratelimit-remaining-requests': '0', 'x-ratelimit-remaining-tokens': '0',
      });
      for (const value of Object.values(rateHeaders(over))) expect(value).not.toMatch(/^-/);
    });

    it('several ids of one kind: the per-kind headers are the tightest id\'s, for requests and tokens apart', async () => {
      const [a, b] = [uniqueId('tag'), uniqueId('tag')];
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/tag/${a}`, { rpm: 10, tpm: 500 })).status).toBe(200);
      expect((await h.admin('PUT', `/v1/limits/tag/${b}`, { rpm: 5, tpm: 1000 })).status).toBe(200);
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { rpm: 3 })).status).toBe(200);
      freshWindow(h, 10);
      const held = await reserve({ scopes: { tag: [a, b], key }, estimate: { cost: '0.01', tokens: 50 } });
      expect(held.status).toBe(201);
      // Requests: b has 4 left (a 9); tokens: a has 450 left (b 950). OpenAI's: the key for requests (2 left).
      expect(rateHeaders(held)).toEqual({
        'x-ratelimit-tag-limit-requests': '5', 'x-ratelimit-tag-remaining-requests': '4',
        'x-ratelimit-key-limit-requests': '3', 'x-ratelimit-key-remaining-requests': '2',
        'x-ratelimit-tag-limit-tokens': '500', 'x-ratelimit-tag-remaining-tokens': '450',
        'x-ratelimit-limit-requests': '3', 'x-ratelimit-remaining-requests': '2', 'x-ratelimit-reset-requests': '1m50s',
        'x-ratelimit-limit-tokens': '500', 'x-ratelimit-remaining-tokens': '450', 'x-ratelimit-reset-tokens': '1m50s',
      });
    });
  });
});

describe.each(backends)('SPENDGATE_TPM_COUNT (%s)', (backend) => {
  describe.each([
    // gpt-4o "hi" with max_tokens 32 holds 8 input + 32 output. Settled with OpenAI usage of 100 prompt tokens,
    // 60 of them cached, and 5 completion tokens: 40 input and 5 output count.
    { count: 'input', held: 8, actual: 40 },
    { count: 'output', held: 32, actual: 5 },
  ])('$count', ({ count, held, actual }) => {
    let h: Harness;
    beforeAll(async () => {
      h = await startHarness(backend, { env: { SPENDGATE_TPM_COUNT: count } });
    });
    afterAll(() => h.close());
    afterEach(() => h.expectAuditOk());

    it(`TPM counts only the ${count} tokens, held and settled`, async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 100 })).status).toBe(200);
      freshWindow(h, 5);
      const reserved = await h.service('POST', '/v1/reservations', { scopes: { key }, model: 'gpt-4o', request: hi(32) });
      expect(reserved.status).toBe(201);
      expect(reserved.body).toMatchObject({ reserved_tokens: held, reserved_input_tokens: 8, reserved_output_tokens: 32 });
      expect(reserved.body.estimate.tpm_count).toBe(count);
      expect(reserved.body.scopes[0]).toMatchObject({ tokens_in_window: held, input_tokens_in_window: 8, output_tokens_in_window: 32 });

      const settled = await h.service('POST', `/v1/reservations/${reserved.body.id}/settle`, {
        usage: { prompt_tokens: 100, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 60 } },
      });
      expect(settled.body).toMatchObject({ actual_tokens: actual, actual_input_tokens: 40, actual_output_tokens: 5 });
      expect(await h.scope('key', key)).toMatchObject({
        tokens_in_window: actual, tokens_remaining: 100 - actual, input_tokens_in_window: 40, output_tokens_in_window: 5,
      });
    });

    it(`the output cap follows what TPM counts (${count})`, async () => {
      const key = uniqueId('key');
      expect((await h.admin('PUT', `/v1/limits/key/${key}`, { tpm: 400 })).status).toBe(200);
      freshWindow(h, 5);
      const reserved = await h.service('POST', '/v1/reservations', { scopes: { key }, model: 'gpt-4o', request: hi() });
      expect(reserved.status).toBe(201);
      if (count === 'input') {
        // TPM counts no output tokens, so it caps none: the 16384 default stands, and the hold counts 8.
        expect(reserved.body).toMatchObject({ reserved_tokens: 8, reserved_output_tokens: 16384 });
        expect(reserved.body.estimate.output_tokens_cap).toBeUndefined();
      } else {
        expect(reserved.body).toMatchObject({ reserved_tokens: 100, reserved_output_tokens: 100 }); // 400 / 4
        expect(reserved.body.estimate.output_tokens_cap).toBe(100);
      }
    });
  });
});

describe.each(backends)('SPENDGATE_RATE_WINDOW_SECONDS (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
    // What migrate does with SPENDGATE_RATE_WINDOW_SECONDS=10, before any reservation.
    await h.db.query('select spendgate.configure(10)');
  });
  afterAll(() => h.close());
  afterEach(() => h.expectAuditOk());

  it('an RPM limit slides over 10 s', async () => {
    const key = uniqueId('key');
    expect((await h.admin('PUT', `/v1/limits/key/${key}`, { rpm: 2 })).status).toBe(200);
    const w = freshWindow(h, 2, 10);
    expect((await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.01' } })).status).toBe(201);
    expect((await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.01' } })).status).toBe(201);
    const refused = await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.01' } });
    expect(refused.status).toBe(429);
    expect(refused.body.error.message).toContain('per 10 s');
    // prev 0, cur 2, e = 2, w = 10: wait = (10 − 2) + max(0, 10 − (2 − 1) × 10 / 2) = 8 + 5 = 13.
    expect(refused.headers.get('retry-after')).toBe('13');
    // The window forgets this one's count 2 × 10 − 2 = 18 s from now.
    expect(refused.headers.get('x-ratelimit-reset-requests')).toBe('18s');

    // W+14 (e = 4 in the next window): 2 × 6/10 = 1.2, + 1 > 2.
    at(h, w, 14);
    expect((await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.01' } })).status).toBe(429);
    // W+15 (e = 5): 2 × 5/10 = 1, + 1 = 2. A 60 s window would still refuse here.
    at(h, w, 15);
    expect((await h.service('POST', '/v1/reservations', { scopes: { key }, estimate: { cost: '0.01' } })).status).toBe(201);
    // W+30: both earlier windows have slid out.
    at(h, w, 30);
    expect(await h.scope('key', key)).toMatchObject({ requests_in_window: 0, requests_remaining: 2 });
  });
});
