// The operations of the model-based test, as fast-check commands. Each runs on the model and on the real app (in
// process, manual clock) and fails on the first difference; after every one, every scope's usage is compared and
// the audit must balance. `toString` is what a shrunk failing sequence prints, so it names things as the model does
// (#3 is the fourth reservation admitted; team:a is the run's team "a").

import { fc } from '@fast-check/vitest';
import { expect } from 'vitest';
import type { Harness, Reply } from '../support/harness.ts';
import { type LedgerModel, type ModelReservation, type Refusal, type ReserveBody, scopeName, type ScopeSpec } from './ledger-model.ts';

/** The real side of a run: the app, and the ids this run's scopes have in its database. */
export interface Real {
  h: Harness;
  /** Scope labels ("team:a") → the scope as the database knows it. */
  scopes: Map<string, { kind: string; id: string }>;
  /** Makes this run's idempotency keys unique in a database that other runs share. */
  prefix: string;
  /** Operations sent, counted across runs for the figures the test prints. */
  stats: { operations: number; comparisons: number };
}

type Cmd = fc.AsyncCommand<LedgerModel, Real>;

const now = (real: Real) => real.h.clock.now()!.getTime();
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

function requestBody(real: Real, body: ReserveBody): Record<string, unknown> {
  const scopes: Record<string, string | string[]> = {};
  for (const label of body.scopes) {
    const scope = real.scopes.get(label)!;
    const ids = scopes[scope.kind];
    scopes[scope.kind] = ids === undefined ? scope.id : [...(Array.isArray(ids) ? ids : [ids]), scope.id];
  }
  return {
    scopes,
    estimate: body.tokens === null ? { cost: body.cost } : { cost: body.cost, tokens: body.tokens },
    ttl_seconds: body.ttl,
    ...(body.key === null ? {} : { idempotency_key: `${real.prefix}-${body.key}` }),
  };
}

/** The refusal as the model names it: "team:a" or "team:a window 1". */
function refusalOf(real: Real, reply: Reply): Refusal {
  const scope = reply.body.error.scope as { kind: string; id: string; window?: number };
  const label = [...real.scopes].find(([, s]) => s.kind === scope.kind && s.id === scope.id)?.[0] ?? `${scope.kind}:${scope.id}`;
  return {
    type: reply.body.error.type,
    scope: label + (scope.window === undefined ? '' : ` window ${scope.window}`),
    limitType: reply.body.error.limit_type,
  };
}

function expectReservation(reply: Reply, model: LedgerModel, r: ModelReservation, at: number, what: string) {
  expect(reply.body.id, what).toBe(r.id);
  expect(reply.body.status, what).toBe(model.status(r, at));
  expect(reply.body.reserved_cost, what).toBe(money6(r.cost));
  expect(reply.body.expires_at, what).toBe(iso(r.expiresAt));
}

const money6 = (v: bigint) => `${v / 1_000_000n}.${(v % 1_000_000n).toString().padStart(6, '0')}`;

/** Every scope's usage as the model derives it, against GET /v1/limits; then the audit. */
export async function expectAgreement(model: LedgerModel, real: Real, after: string): Promise<void> {
  const at = now(real);
  for (const label of model.scopeNames()) {
    const scope = real.scopes.get(label)!;
    const reply = await real.h.service('GET', `/v1/limits/${scope.kind}/${encodeURIComponent(scope.id)}`);
    expect(reply.status, `${label} after ${after}`).toBe(200);
    const want = model.view(label, at);
    const got = {
      spend: reply.body.spend,
      reserved: reply.body.reserved,
      in_flight: reply.body.in_flight,
      requests_in_window: reply.body.requests_in_window,
      tokens_in_window: reply.body.tokens_in_window,
      window: reply.body.windows.length > 0 ? { spend: reply.body.windows[0].spend, reserved: reply.body.windows[0].reserved } : null,
    };
    expect(got, `${label} after ${after}`).toEqual(want);
    real.stats.comparisons += 1;
  }
  const audit = await real.h.admin('GET', '/v1/audit');
  expect(audit.status, `audit after ${after}`).toBe(200);
  expect(audit.body.mismatches, `audit after ${after}`).toEqual([]);
  expect(audit.body.ok).toBe(true);
}

function pick<T>(items: readonly T[], i: number): T | null {
  return items.length === 0 ? null : items[i % items.length]!;
}

class Reserve implements Cmd {
  readonly body: ReserveBody;
  constructor(body: ReserveBody) {
    this.body = body;
  }
  check = () => true;
  async run(model: LedgerModel, real: Real) {
    await sendReserve(model, real, this.body, this.toString());
  }
  toString() {
    const b = this.body;
    return `reserve [${b.scopes.join(' ')}] cost ${b.cost}${b.tokens === null ? '' : ` tokens ${b.tokens}`} ttl ${b.ttl}${b.key ? ` key ${b.key}` : ''}`;
  }
}

async function sendReserve(model: LedgerModel, real: Real, body: ReserveBody, what: string) {
  if (body.key !== null) model.keyed.push(body);
  let serverId = '';
  const reply = await real.h.service('POST', '/v1/reservations', requestBody(real, body));
  real.stats.operations += 1;
  if (reply.status === 201) serverId = reply.body.id;
  const at = now(real);
  const want = model.reserve(body, at, () => serverId);
  expect(reply.status, `${what}: ${JSON.stringify(reply.body).slice(0, 600)}`).toBe(want.status);
  if (want.status === 201 || want.status === 200) {
    expectReservation(reply, model, want.reservation, at, what);
  } else if (want.status === 429) {
    expect(refusalOf(real, reply), what).toEqual(want.refusal);
  } else {
    expect(reply.body.error.type, what).toBe('conflict');
  }
}

/** The same key and body again: the first answer again (a hold or a refusal), never a second hold. */
class RetryReserve implements Cmd {
  readonly i: number;
  constructor(i: number) {
    this.i = i;
  }
  label = '';
  check = (model: Readonly<LedgerModel>) => model.keyed.length > 0;
  async run(model: LedgerModel, real: Real) {
    const body = pick(model.keyed, this.i)!;
    this.label = `key ${body.key}`;
    await sendReserve(model, real, body, this.toString());
  }
  toString() {
    return `retry reserve (${this.label || `keyed attempt ${this.i}`})`;
  }
}

/** A used key with another body: 409, nothing held. */
class ReuseKey implements Cmd {
  readonly i: number;
  constructor(i: number) {
    this.i = i;
  }
  label = '';
  check = (model: Readonly<LedgerModel>) => model.keyed.length > 0;
  async run(model: LedgerModel, real: Real) {
    const first = pick(model.keyed, this.i)!;
    const body = { ...first, ttl: first.ttl + 1 };
    this.label = `key ${body.key}`;
    await sendReserve(model, real, body, this.toString());
  }
  toString() {
    return `reuse (${this.label || `keyed attempt ${this.i}`}) with another body`;
  }
}

/** POST /v1/reservations/check: the decision a reserve would get, with nothing written. */
class Peek implements Cmd {
  readonly body: ReserveBody;
  constructor(body: ReserveBody) {
    this.body = body;
  }
  check = () => true;
  async run(model: LedgerModel, real: Real) {
    const reply = await real.h.service('POST', '/v1/reservations/check', requestBody(real, this.body));
    real.stats.operations += 1;
    const want = model.check(this.body, now(real));
    expect(reply.status, this.toString()).toBe(want ? 429 : 200);
    if (want) expect(refusalOf(real, reply), this.toString()).toEqual(want);
  }
  toString() {
    return `check [${this.body.scopes.join(' ')}] cost ${this.body.cost}${this.body.tokens === null ? '' : ` tokens ${this.body.tokens}`}`;
  }
}

/** Settle, release or extend reservation #i (or an unknown id when there is none). */
class OnReservation implements Cmd {
  readonly op: 'settle' | 'release' | 'extend' | 'get';
  readonly i: number;
  readonly cost: string;
  readonly usage: { input: number; output: number } | null;
  readonly ttl: number;
  constructor(op: OnReservation['op'], i: number, cost: string, usage: OnReservation['usage'], ttl: number) {
    this.op = op;
    this.i = i;
    this.cost = cost;
    this.usage = usage;
    this.ttl = ttl;
  }
  n: number | null = null;
  check = () => true;
  async run(model: LedgerModel, real: Real) {
    const r = pick(model.reservations, this.i);
    this.n = r?.n ?? null;
    const id = r?.id ?? crypto.randomUUID();
    const at = now(real);
    const path = `/v1/reservations/${id}${this.op === 'get' ? '' : `/${this.op}`}`;
    if (this.op === 'get') {
      const reply = await real.h.service('GET', path);
      real.stats.operations += 1;
      expect(reply.status, this.toString()).toBe(r ? 200 : 404);
      if (r) expectReservation(reply, model, r, at, this.toString());
      return;
    }
    const body =
      this.op === 'settle'
        ? { cost: this.cost, ...(this.usage ? { usage: { prompt_tokens: this.usage.input, completion_tokens: this.usage.output } } : {}) }
        : this.op === 'extend'
          ? { ttl_seconds: this.ttl }
          : undefined;
    const reply = await real.h.service('POST', path, body);
    real.stats.operations += 1;
    const want =
      this.op === 'settle'
        ? model.settle(this.n, this.cost, this.usage, at)
        : this.op === 'release'
          ? model.release(this.n, at)
          : model.extend(this.n, this.ttl, at);
    const what = `${this.toString()}: ${JSON.stringify(reply.body).slice(0, 600)}`;
    expect(reply.status, what).toBe(want.status);
    if (want.status !== 200) {
      expect(reply.body.error.type, what).toBe(want.status === 404 ? 'not_found' : 'conflict');
      return;
    }
    expectReservation(reply, model, want.reservation, at, what);
    if (this.op === 'settle') {
      expect(reply.body.actual_cost, what).toBe(money6(want.reservation.actualCost!));
      expect(reply.body.late, what).toBe(want.reservation.late);
      expect(reply.headers.get('idempotent-replayed') === 'true', what).toBe(want.replayed);
    }
  }
  toString() {
    const target = this.n === null ? (this.i >= 0 ? `#${this.i}?` : 'unknown') : `#${this.n}`;
    if (this.op === 'settle') return `settle ${target} cost ${this.cost}${this.usage ? ` usage ${this.usage.input}+${this.usage.output}` : ''}`;
    if (this.op === 'extend') return `extend ${target} ttl ${this.ttl}`;
    return `${this.op} ${target}`;
  }
}

class Sweep implements Cmd {
  check = () => true;
  async run(model: LedgerModel, real: Real) {
    const reply = await real.h.as('cron')('POST', '/v1/sweep');
    real.stats.operations += 1;
    expect(reply.status).toBe(200);
    expect(reply.body.expired, 'sweep').toBe(model.sweep(now(real)));
  }
  toString() {
    return 'sweep';
  }
}

/** Moves the manual clock: across rate windows (60 s), budget periods (1 h, 24 h), expiries and the refusal memory. */
class Advance implements Cmd {
  readonly seconds: number;
  constructor(seconds: number) {
    this.seconds = seconds;
  }
  check = () => true;
  async run(_model: LedgerModel, real: Real) {
    real.h.clock.advance(this.seconds);
  }
  toString() {
    return `advance ${this.seconds}s`;
  }
}

// Small sets of values, so that collisions (a retry, the same settle twice, a full budget) happen often.
const costs = ['0', '0.01', '0.1', '0.25', '0.333333', '0.5', '1.2'] as const;
const ttls = [1, 30, 90, 600, 3600] as const;

function reserveBody(labels: readonly string[]) {
  return fc.record({
    scopes: fc.subarray([...labels], { minLength: 1 }),
    cost: fc.constantFrom(...costs),
    tokens: fc.option(fc.constantFrom(0, 40, 150, 400), { nil: null }),
    ttl: fc.constantFrom(...ttls),
    key: fc.constant(null as string | null),
  });
}

let keyCounter = 0;

/** A command that, once it has run, compares every scope with the model and checks the audit. */
class Compared implements Cmd {
  readonly inner: Cmd;
  constructor(inner: Cmd) {
    this.inner = inner;
  }
  check(model: Readonly<LedgerModel>) {
    return this.inner.check(model);
  }
  async run(model: LedgerModel, real: Real) {
    await this.inner.run(model, real);
    await expectAgreement(model, real, this.inner.toString());
  }
  toString() {
    return this.inner.toString();
  }
}

/** Every command, weighted so that runs are mostly reserves, settles and releases with the clock moving. */
export function commandArbitraries(labels: readonly string[]): Array<fc.Arbitrary<Cmd>> {
  return commandKinds(labels).map((arbitrary) => arbitrary.map((command) => new Compared(command)));
}

function commandKinds(labels: readonly string[]): Array<fc.Arbitrary<Cmd>> {
  const index = fc.nat({ max: 40 });
  const usage = fc.option(fc.record({ input: fc.constantFrom(0, 30, 200), output: fc.constantFrom(0, 50, 300) }), { nil: null });
  return [
    reserveBody(labels).map((b) => new Reserve(b)),
    reserveBody(labels).map((b) => new Reserve(b)),
    reserveBody(labels).map((b) => new Reserve({ ...b, key: `k${++keyCounter}` })),
    index.map((i) => new RetryReserve(i)),
    index.map((i) => new ReuseKey(i)),
    reserveBody(labels).map((b) => new Peek(b)),
    fc.tuple(index, fc.constantFrom(...costs), usage).map(([i, cost, u]) => new OnReservation('settle', i, cost, u, 0)),
    fc.tuple(index, fc.constantFrom(...costs), usage).map(([i, cost, u]) => new OnReservation('settle', i, cost, u, 0)),
    index.map((i) => new OnReservation('release', i, '0', null, 0)),
    fc.tuple(index, fc.constantFrom(...ttls)).map(([i, ttl]) => new OnReservation('extend', i, '0', null, ttl)),
    index.map((i) => new OnReservation('get', i, '0', null, 0)),
    fc.constant(null).map(() => new UnknownSettle()),
    fc.constant(null).map(() => new Sweep()),
    fc.constantFrom(1, 29, 31, 59, 61, 600, 3600, 86_460).map((s) => new Advance(s)),
    fc.constantFrom(1, 29, 31, 59, 61, 600, 3600, 86_460).map((s) => new Advance(s)),
  ];
}

/** A settle of a reservation that does not exist: 404, nothing changes. */
class UnknownSettle implements Cmd {
  check = () => true;
  async run(_model: LedgerModel, real: Real) {
    const reply = await real.h.service('POST', `/v1/reservations/${crypto.randomUUID()}/settle`, { cost: '0.1' });
    real.stats.operations += 1;
    expect(reply.status).toBe(404);
    expect(reply.body.error.type).toBe('not_found');
  }
  toString() {
    return 'settle unknown';
  }
}

/** The body of PUT /v1/limits for a scope the model describes. */
export function limitBody(scope: ScopeSpec): Record<string, unknown> {
  const l = scope.limit;
  return {
    max_budget: l.max_budget,
    budget_duration: l.budget_duration,
    rpm: l.rpm,
    tpm: l.tpm,
    max_parallel: l.max_parallel,
    ...(l.window ? { windows: [l.window] } : {}),
  };
}

export { scopeName };
