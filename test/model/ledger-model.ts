// A small in-memory model of spendgate's rules (README, Design), written from the rules and not from the SQL: a
// list of reservations and the limits, with every counter derived from that list at the moment it is read. The
// model-based test runs the same operations here and against the real database and compares the answers.
//
// Amounts are bigint micro-dollars and time is whole milliseconds (the test moves the clock in whole seconds), so
// every comparison is exact, including the two-window weighted rate arithmetic.

import { ceilDiv, micros, money } from '../support/money.ts';

export type Duration = '1h' | '24h';

export interface LimitSpec {
  max_budget: string | null;
  budget_duration: Duration | null;
  rpm: number | null;
  tpm: number | null;
  max_parallel: number | null;
  /** One budget window (`windows: [...]`): a second budget on the scope with a period of its own. */
  window: { max_budget: string; budget_duration: Duration } | null;
}

export interface ScopeSpec {
  kind: string;
  id: string;
  limit: LimitSpec;
}

export type Status = 'held' | 'settled' | 'released' | 'expired';

export interface ModelReservation {
  /** The order it was admitted in (#0, #1, ...), how commands and failure reports name it. */
  n: number;
  id: string;
  scopes: string[];
  cost: bigint;
  tokens: bigint;
  windowStart: number;
  expiresAt: number;
  /** As stored: a hold past its expiry stays 'held' here until some call writes the expiry (see `touch`). */
  stored: Status;
  actualCost: bigint | null;
  actualTokens: bigint | null;
  settledAt: number | null;
  settleBody: string | null;
  late: boolean;
}

export interface ReserveBody {
  scopes: string[];
  cost: string;
  tokens: number | null;
  ttl: number;
  key: string | null;
}

export type Refusal = { type: 'budget_exceeded' | 'parallel_limit_exceeded' | 'rate_limit_exceeded'; scope: string; limitType: string };

export type ReserveOutcome =
  | { status: 201; reservation: ModelReservation }
  | { status: 200; reservation: ModelReservation }
  | { status: 429; refusal: Refusal }
  | { status: 409 };

export type SettleOutcome =
  | { status: 404 }
  | { status: 409 }
  | { status: 200; reservation: ModelReservation; replayed: boolean };

/** What GET /v1/limits/{kind}/{id} shows of a scope (and of its budget window). */
export interface ScopeView {
  spend: string;
  reserved: string;
  in_flight: number;
  requests_in_window: number;
  tokens_in_window: number;
  window: { spend: string; reserved: string } | null;
}

const hourMs = 3_600_000;
const durationMs: Record<Duration, number> = { '1h': hourMs, '24h': 24 * hourMs };
const refusalMemoryMs = 24 * hourMs;

/** Two views of the counters: `live` leaves out holds past their expiry (what reads show, and what a reserve
 * decides on once it has expired them); `stored` counts them while no call has written their expiry. */
type View = 'live' | 'stored';

interface Part {
  scope: ScopeSpec;
  /** '' for the scope itself, '@1' for its budget window. */
  part: '' | '@1';
  maxBudget: bigint | null;
  duration: Duration | null;
}

export class LedgerModel {
  readonly reservations: ModelReservation[] = [];
  /** Every reserve attempt sent with an idempotency key, in order, for retries. */
  readonly keyed: ReserveBody[] = [];
  private readonly byKey = new Map<string, { body: string; reservation: ModelReservation }>();
  private readonly refusals = new Map<string, { body: string; refusal: Refusal; at: number }>();
  private readonly scopes: Map<string, ScopeSpec>;

  /** When the limits were set, which is where rolling budget periods start. */
  private readonly anchor: number;
  private readonly windowSeconds: number;

  constructor(scopes: readonly ScopeSpec[], anchor: number, windowSeconds = 60) {
    this.scopes = new Map(scopes.map((s) => [scopeName(s), s]));
    this.anchor = anchor;
    this.windowSeconds = windowSeconds;
  }

  reserve(body: ReserveBody, now: number, id: () => string): ReserveOutcome {
    const text = bodyText(body);
    if (body.key !== null) {
      const held = this.byKey.get(body.key);
      if (held) return held.body === text ? { status: 200, reservation: held.reservation } : { status: 409 };
      const refused = this.refusals.get(body.key);
      if (refused) return refused.body === text ? { status: 429, refusal: refused.refusal } : { status: 409 };
    }
    const refusal = this.decide(body, now, true);
    if (refusal) {
      if (body.key !== null) this.refusals.set(body.key, { body: text, refusal, at: now });
      return { status: 429, refusal };
    }
    const reservation: ModelReservation = {
      n: this.reservations.length,
      id: id(),
      scopes: [...new Set(body.scopes)],
      cost: micros(body.cost),
      tokens: BigInt(body.tokens ?? 0),
      windowStart: this.windowStart(now),
      expiresAt: now + body.ttl * 1000,
      stored: 'held',
      actualCost: null,
      actualTokens: null,
      settledAt: null,
      settleBody: null,
      late: false,
    };
    this.reservations.push(reservation);
    if (body.key !== null) this.byKey.set(body.key, { body: text, reservation });
    return { status: 201, reservation };
  }

  /** POST /v1/reservations/check: the decision, with nothing written (the key is ignored). */
  check(body: ReserveBody, now: number): Refusal | null {
    return this.decide(body, now, false);
  }

  /** The first limit the hold would break, in the global key order; null when it fits everywhere. A refusal on the
   * stored counters first expires the stale holds on the named scopes and decides again (README: "before refusing
   * it expires the stale holds on its scopes itself"). */
  private decide(body: ReserveBody, now: number, write: boolean): Refusal | null {
    const parts = this.partsOf(body.scopes);
    const cost = micros(body.cost);
    const tokens = BigInt(body.tokens ?? 0);
    const first = this.firstRefusal(parts, cost, tokens, now, 'stored');
    if (!first) return null;
    if (write) {
      for (const r of this.reservations) {
        if (this.isStale(r, now) && r.scopes.some((s) => body.scopes.includes(s))) r.stored = 'expired';
      }
    }
    return this.firstRefusal(parts, cost, tokens, now, 'live');
  }

  private firstRefusal(parts: Part[], cost: bigint, tokens: bigint, now: number, view: View): Refusal | null {
    for (const p of parts) {
      const name = scopeName(p.scope) + (p.part === '@1' ? ' window 1' : '');
      const used = this.spend(p, now) + this.reserved(p.scope, now, view);
      if (p.maxBudget !== null && (used >= p.maxBudget || used + cost > p.maxBudget)) {
        return { type: 'budget_exceeded', scope: name, limitType: 'max_budget' };
      }
      if (p.part === '@1') continue;
      const limit = p.scope.limit;
      if (limit.max_parallel !== null && this.inFlight(p.scope, now, view) + 1 > limit.max_parallel) {
        return { type: 'parallel_limit_exceeded', scope: name, limitType: 'max_parallel' };
      }
      if (limit.rpm !== null && this.overRate(this.requests(p.scope, now), 1n, limit.rpm, now)) {
        return { type: 'rate_limit_exceeded', scope: name, limitType: 'rpm' };
      }
      if (limit.tpm !== null && this.overRate(this.tokens(p.scope, now, view), tokens, limit.tpm, now)) {
        return { type: 'rate_limit_exceeded', scope: name, limitType: 'tpm' };
      }
    }
    return null;
  }

  settle(n: number | null, cost: string, usage: { input: number; output: number } | null, now: number): SettleOutcome {
    const r = n === null ? undefined : this.reservations[n];
    if (!r) return { status: 404 };
    this.touch(r, now);
    const text = JSON.stringify({ cost, usage });
    if (r.stored === 'settled') return r.settleBody === text ? { status: 200, reservation: r, replayed: true } : { status: 409 };
    if (r.stored === 'released') return { status: 409 };
    r.late = r.stored === 'expired';
    r.stored = 'settled';
    r.actualCost = micros(cost);
    // Without usage the held tokens stand; with it, TPM counts its input and output tokens.
    r.actualTokens = usage ? BigInt(usage.input + usage.output) : r.tokens;
    r.settledAt = now;
    r.settleBody = text;
    return { status: 200, reservation: r, replayed: false };
  }

  release(n: number | null, now: number): SettleOutcome {
    const r = n === null ? undefined : this.reservations[n];
    if (!r) return { status: 404 };
    this.touch(r, now);
    if (r.stored === 'settled') return { status: 409 };
    if (r.stored === 'held') r.stored = 'released';
    return { status: 200, reservation: r, replayed: false };
  }

  extend(n: number | null, ttl: number, now: number): SettleOutcome {
    const r = n === null ? undefined : this.reservations[n];
    if (!r) return { status: 404 };
    this.touch(r, now);
    if (r.stored !== 'held') return { status: 409 };
    r.expiresAt = now + ttl * 1000;
    return { status: 200, reservation: r, replayed: false };
  }

  /** Expires every stale hold; refusals older than a day are forgotten. Returns how many holds it expired. */
  sweep(now: number): number {
    let expired = 0;
    for (const r of this.reservations) {
      if (this.isStale(r, now)) {
        r.stored = 'expired';
        expired += 1;
      }
    }
    for (const [key, refusal] of this.refusals) {
      if (refusal.at < now - refusalMemoryMs) this.refusals.delete(key);
    }
    return expired;
  }

  /** The status a read shows: a held reservation past its expiry is expired. */
  status(r: ModelReservation, now: number): Status {
    return this.isStale(r, now) ? 'expired' : r.stored;
  }

  view(name: string, now: number): ScopeView {
    const scope = this.scopes.get(name);
    if (!scope) throw new Error(`no scope ${name} in the model`);
    const [main, window] = this.partsOf([name]);
    const requests = this.requests(scope, now);
    const tokens = this.tokens(scope, now, 'live');
    const reserved = this.reserved(scope, now, 'live');
    return {
      spend: money(this.spend(main!, now)),
      reserved: money(reserved),
      in_flight: this.inFlight(scope, now, 'live'),
      requests_in_window: Number(this.weighted(requests, now)),
      tokens_in_window: Number(this.weighted(tokens, now)),
      window: window ? { spend: money(this.spend(window, now)), reserved: money(reserved) } : null,
    };
  }

  scopeNames(): string[] {
    return [...this.scopes.keys()];
  }

  /** A call on a reservation writes its expiry first when it is due. */
  private touch(r: ModelReservation, now: number): void {
    if (this.isStale(r, now)) r.stored = 'expired';
  }

  private isStale(r: ModelReservation, now: number): boolean {
    return r.stored === 'held' && r.expiresAt <= now;
  }

  private isHeld(r: ModelReservation, now: number, view: View): boolean {
    return r.stored === 'held' && (view === 'stored' || r.expiresAt > now);
  }

  /** The counters a reserve naming these scopes checks, in the global lock order (kind, id, then '' before '@1'). */
  private partsOf(names: readonly string[]): Part[] {
    const scopes = [...new Set(names)].map((name) => {
      const scope = this.scopes.get(name);
      if (!scope) throw new Error(`no scope ${name} in the model`);
      return scope;
    });
    scopes.sort((a, b) => compare(a.kind, b.kind) || compare(a.id, b.id));
    return scopes.flatMap((scope): Part[] => {
      const main: Part = { scope, part: '', maxBudget: nullableMicros(scope.limit.max_budget), duration: scope.limit.budget_duration };
      const w = scope.limit.window;
      return w ? [main, { scope, part: '@1', maxBudget: micros(w.max_budget), duration: w.budget_duration }] : [main];
    });
  }

  private touching(scope: ScopeSpec): ModelReservation[] {
    const name = scopeName(scope);
    return this.reservations.filter((r) => r.scopes.includes(name));
  }

  /** Settled cost charged in the current budget period: each charge lands in the period it was settled in. */
  private spend(p: Part, now: number): bigint {
    let total = 0n;
    for (const r of this.touching(p.scope)) {
      if (r.stored !== 'settled' || r.settledAt === null || r.actualCost === null) continue;
      if (p.duration === null || this.periodStart(p.duration, r.settledAt) === this.periodStart(p.duration, now)) total += r.actualCost;
    }
    return total;
  }

  private reserved(scope: ScopeSpec, now: number, view: View): bigint {
    return this.touching(scope).reduce((sum, r) => (this.isHeld(r, now, view) ? sum + r.cost : sum), 0n);
  }

  private inFlight(scope: ScopeSpec, now: number, view: View): number {
    return this.touching(scope).filter((r) => this.isHeld(r, now, view)).length;
  }

  /** Requests counted in the current and the previous rate window: every admitted reserve, whatever became of it. */
  private requests(scope: ScopeSpec, now: number): { prev: bigint; cur: bigint } {
    return this.inWindows(scope, now, () => 1n);
  }

  /** Tokens in the windows: a hold's tokens while it is held, the actual ones once settled, none once given back. */
  private tokens(scope: ScopeSpec, now: number, view: View): { prev: bigint; cur: bigint } {
    return this.inWindows(scope, now, (r) =>
      this.isHeld(r, now, view) ? r.tokens : r.stored === 'settled' ? (r.actualTokens ?? 0n) : 0n,
    );
  }

  private inWindows(scope: ScopeSpec, now: number, amount: (r: ModelReservation) => bigint): { prev: bigint; cur: bigint } {
    const cur = this.windowStart(now);
    const prev = cur - this.windowSeconds * 1000;
    let counts = { prev: 0n, cur: 0n };
    for (const r of this.touching(scope)) {
      if (r.windowStart === cur) counts = { ...counts, cur: counts.cur + amount(r) };
      else if (r.windowStart === prev) counts = { ...counts, prev: counts.prev + amount(r) };
    }
    return counts;
  }

  /** used = prev × (share of the window still to run) + cur, times the window length so it stays whole. */
  private scaledUse(counts: { prev: bigint; cur: bigint }, now: number): { used: bigint; w: bigint } {
    const w = BigInt(this.windowSeconds);
    const elapsed = BigInt(Math.floor((now - this.windowStart(now)) / 1000));
    return { used: counts.prev * (w - elapsed) + counts.cur * w, w };
  }

  private overRate(counts: { prev: bigint; cur: bigint }, need: bigint, limit: number, now: number): boolean {
    const { used, w } = this.scaledUse(counts, now);
    return used + need * w > BigInt(limit) * w;
  }

  /** What reads show: the weighted use, rounded up. */
  private weighted(counts: { prev: bigint; cur: bigint }, now: number): bigint {
    const { used, w } = this.scaledUse(counts, now);
    return ceilDiv(used, w);
  }

  private windowStart(at: number): number {
    const w = this.windowSeconds * 1000;
    return Math.floor(at / w) * w;
  }

  /** Rolling periods counted from when the duration was set. */
  private periodStart(duration: Duration, at: number): number {
    const d = durationMs[duration];
    return this.anchor + Math.floor((at - this.anchor) / d) * d;
  }
}

export function scopeName(s: { kind: string; id: string }): string {
  return `${s.kind}:${s.id}`;
}

function bodyText(body: ReserveBody): string {
  const { key: _key, ...rest } = body;
  return JSON.stringify(rest);
}

function nullableMicros(text: string | null): bigint | null {
  return text === null ? null : micros(text);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
