// Rate limits under concurrency on the real server: hundreds of simultaneous reserves from a pool of connections,
// against RPM and TPM limits shared by several scopes, never admit more than the limits allow.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { postgresUrl } from './support/databases.ts';
import { type Harness, type Reply, type ScopeEntry, scopeOf, startHarness, uniqueId } from './support/harness.ts';

function tally(replies: readonly Reply[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const reply of replies) counts[reply.status] = (counts[reply.status] ?? 0) + 1;
  return counts;
}

/** Moves the clock to 5 s into a rate window at least one whole window after now. */
function freshWindow(h: Harness): void {
  const now = h.clock.now()!.getTime();
  h.clock.set(new Date((Math.floor(now / 60_000) + 2) * 60_000 + 5_000));
}

// The shape of both tests: one org, two teams, 50 keys (25 per team), 10 requests per key = 500 requests of
// 100 tokens each (a caller's token estimate), all in one rate window.
//   org:   tpm 15000 → at most 150 holds;  rpm 1000 (not binding)
//   teams: rpm 100 and tpm 9000 → at most 90 holds each
//   keys:  rpm 5 → at most 5 holds each (25 keys × 5 = 125 per team)
// Exactly 150 are admitted whatever the order: while the org has room, a request is refused only by its key or its
// team; every team can reach 90 (its keys can give 125), and 90 + 90 > 150, so the org always fills.
const KEYS = 50;
const PER_KEY = 10;
const TOKENS = 100;
const ORG_TPM = 15000;
const TEAM_TPM = 9000;
const TEAM_RPM = 100;
const KEY_RPM = 5;

describe.skipIf(!postgresUrl)('rate limits under concurrency on real Postgres', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('postgres', { pool: 20 });
  });
  afterAll(() => h?.close());
  afterEach(() => h.expectAuditOk());

  async function setUp() {
    const org = uniqueId('org');
    const teams = [uniqueId('team'), uniqueId('team')];
    const keys = Array.from({ length: KEYS }, (_, i) => `${org}-k${i}`);
    expect((await h.admin('PUT', `/v1/limits/org/${org}`, { tpm: ORG_TPM, rpm: 1000 })).status).toBe(200);
    for (const team of teams) expect((await h.admin('PUT', `/v1/limits/team/${team}`, { rpm: TEAM_RPM, tpm: TEAM_TPM })).status).toBe(200);
    for (const key of keys) expect((await h.admin('PUT', `/v1/limits/key/${key}`, { rpm: KEY_RPM })).status).toBe(200);
    const teamOf = (k: number) => teams[k < KEYS / 2 ? 0 : 1]!;
    // Request i is from key i % 50: the keys' requests interleave.
    const bodies = Array.from({ length: KEYS * PER_KEY }, (_, i) => {
      const k = i % KEYS;
      return { k, body: { scopes: { key: keys[k]!, team: teamOf(k), org }, estimate: { cost: '0.001', tokens: TOKENS } } };
    });
    return { org, teams, keys, teamOf, bodies };
  }

  it('500 simultaneous reserves admit exactly what the shared RPM and TPM limits allow', async () => {
    const { org, teams, keys, teamOf, bodies } = await setUp();
    freshWindow(h);
    const replies = await Promise.all(bodies.map(({ body }) => h.service('POST', '/v1/reservations', body)));

    expect(tally(replies)).toEqual({ 201: 150, 429: 350 });
    const admittedPerKey = new Array<number>(KEYS).fill(0);
    const admittedPerTeam = [0, 0];
    replies.forEach((reply, i) => {
      if (reply.status !== 201) return;
      const k = bodies[i]!.k;
      admittedPerKey[k]! += 1;
      admittedPerTeam[teamOf(k) === teams[0] ? 0 : 1]! += 1;
    });
    for (const n of admittedPerKey) expect(n).toBeLessThanOrEqual(KEY_RPM);
    for (const n of admittedPerTeam) expect(n).toBeLessThanOrEqual(TEAM_TPM / TOKENS);
    expect(admittedPerTeam[0]! + admittedPerTeam[1]!).toBe(150);

    // Every refusal names a limit that really was full: rpm of a key (5 of 5), or tpm of a team or the org.
    for (const refused of replies.filter((r) => r.status === 429)) {
      const e = refused.body.error;
      expect(e.type).toBe('rate_limit_exceeded');
      if (e.limit_type === 'rpm') {
        expect(e).toMatchObject({ scope: { kind: 'key' }, limit: KEY_RPM, used: KEY_RPM, requested: 1 });
      } else {
        expect(e.limit_type).toBe('tpm');
        expect(['team', 'org']).toContain(e.scope.kind);
        expect(e.requested).toBe(TOKENS);
        expect(e.used + TOKENS).toBeGreaterThan(e.limit);
        expect(e.used).toBeLessThanOrEqual(e.limit);
      }
    }

    // Each admission saw the state the one before it left: the org's count in the 201s is 100, 200, ..., 15000.
    const orgTokens = replies.filter((r) => r.status === 201).map((r) => scopeOf(r, 'org', org).tokens_in_window).sort((a, b) => a - b);
    expect(orgTokens).toEqual(Array.from({ length: 150 }, (_, i) => (i + 1) * TOKENS));
    for (const reply of replies.filter((r) => r.status === 201)) {
      for (const s of reply.body.scopes as ScopeEntry[]) {
        if (s.rpm !== null) expect(s.requests_in_window).toBeLessThanOrEqual(s.rpm);
        if (s.tpm !== null) expect(s.tokens_in_window).toBeLessThanOrEqual(s.tpm);
      }
    }

    // The counters agree with the replies.
    expect(await h.scope('org', org)).toMatchObject({ requests_in_window: 150, tokens_in_window: ORG_TPM, tokens_remaining: 0, in_flight: 150 });
    for (const [t, team] of teams.entries()) {
      expect(await h.scope('team', team)).toMatchObject({
        requests_in_window: admittedPerTeam[t], tokens_in_window: admittedPerTeam[t]! * TOKENS, in_flight: admittedPerTeam[t],
      });
    }
    const keyCounts = await Promise.all(keys.map(async (key) => (await h.scope('key', key)).requests_in_window as number));
    expect(keyCounts).toEqual(admittedPerKey);
  });

  it('settles, releases and new reserves at once: every admission stays within the limits, the counters exact', async () => {
    const { org, teams, bodies } = await setUp();
    freshWindow(h);
    // The first 250 requests (5 per key): the org fills (150 holds).
    const first = await Promise.all(bodies.slice(0, 250).map(({ body }) => h.service('POST', '/v1/reservations', body)));
    expect(tally(first)).toEqual({ 201: 150, 429: 100 });
    const held = first.filter((r) => r.status === 201).map((r) => r.body.id as string);

    // Then at once: half the holds settle with 10 tokens used (90 of their 100 freed), half are released (all 100
    // freed), and 200 more requests arrive. At most 75 × 90 + 75 × 100 = 14250 tokens come free, so at most 142
    // more holds can ever fit in the org's 15000, and keys and teams keep their own limits.
    h.clock.advance(10);
    type Op = { kind: 'settle' | 'release'; id: string } | { kind: 'reserve'; i: number };
    // Interleaved: a settle or release, then a reserve, and so on; all started at once.
    const ops: Op[] = [];
    for (let j = 0; j < Math.max(held.length, 200); j++) {
      if (j < held.length) ops.push({ kind: j % 2 === 0 ? 'settle' : 'release', id: held[j]! });
      if (j < 200) ops.push({ kind: 'reserve', i: 250 + j });
    }
    const results = await Promise.all(ops.map(async (op) => ({
      op,
      reply: op.kind === 'reserve'
        ? await h.service('POST', '/v1/reservations', bodies[op.i]!.body)
        : op.kind === 'settle'
          ? await h.service('POST', `/v1/reservations/${op.id}/settle`, { usage: { prompt_tokens: 5, completion_tokens: 5 } })
          : await h.service('POST', `/v1/reservations/${op.id}/release`),
    })));
    for (const { op, reply } of results) {
      if (op.kind === 'reserve') expect([201, 429]).toContain(reply.status);
      else expect(reply.status).toBe(200);
      if (op.kind === 'settle') expect(reply.body).toMatchObject({ status: 'settled', actual_tokens: 10 });
    }
    const admitted = results.filter((r) => r.op.kind === 'reserve' && r.reply.status === 201).map((r) => r.reply);
    for (const reply of admitted) {
      for (const s of reply.body.scopes as ScopeEntry[]) {
        if (s.rpm !== null) expect(s.requests_in_window).toBeLessThanOrEqual(s.rpm);
        if (s.tpm !== null) expect(s.tokens_in_window).toBeLessThanOrEqual(s.tpm);
      }
    }
    expect(admitted.length).toBeLessThanOrEqual(142);
    for (const refused of results.filter((r) => r.reply.status === 429)) expect(refused.reply.body.error.type).toBe('rate_limit_exceeded');

    // 75 settled at 10 tokens, the new holds at 100 each; released ones count nothing.
    const org_ = await h.scope('org', org);
    expect(org_).toMatchObject({ tokens_in_window: 75 * 10 + admitted.length * TOKENS, in_flight: admitted.length, requests_in_window: 150 + admitted.length });
    expect(org_.tokens_in_window).toBeLessThanOrEqual(ORG_TPM);
    for (const team of teams) {
      const t = await h.scope('team', team);
      expect(t.tokens_in_window).toBeLessThanOrEqual(TEAM_TPM);
      expect(t.requests_in_window).toBeLessThanOrEqual(TEAM_RPM);
    }
  });
});
