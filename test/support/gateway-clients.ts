// Concurrent callers of a fleet of spendgate instances, as gateways use it: reserve, then settle, release or
// abandon the hold (a caller that crashed), each call sent to any instance, and retried on another with the same
// idempotency key or body when an instance dies under it (no answer) or answers 503. Every call and its outcome is
// recorded, so that the test can hold the ledger to what the callers were told.
import { tokens } from './harness.ts';
import { type HttpReply, send, sleep } from './load.ts';
import { micros } from './money.ts';
import type { ServerProcess } from './spendgate-processes.ts';

export interface Scope {
  kind: string;
  id: string;
  max_budget?: string;
  max_parallel?: number;
}

/** One reserve attempt by one caller, and what became of it. */
export interface Hold {
  key: string;
  scopes: Scope[];
  /** The hold's id, once the caller was told it was admitted; null when refused or never answered. */
  id: string | null;
  outcome: 'settled' | 'released' | 'abandoned' | 'refused' | 'unanswered';
  refusal?: string;
  settledCost?: string;
}

export interface FleetStats {
  requests: number;
  /** Calls sent again to another instance after one died under them or answered 503. */
  retried: number;
  /** Retries answered as a replay of a call that had in fact been applied before the failure. */
  replayedAfterFailure: number;
  violations: string[];
}

export interface Fleet {
  /** The instances that callers may use; the test removes one before it kills it, and adds replacements. */
  alive: ServerProcess[];
  stats: FleetStats;
  holds: Hold[];
}

const failed = (reply: HttpReply) => reply.status === 0 || reply.status === 503;

/** Sends a call to a random live instance; a failure is sent again elsewhere (unless `retry` is false), bounded. */
async function call(fleet: Fleet, method: string, path: string, body: unknown, retry: boolean): Promise<HttpReply> {
  const deadline = Date.now() + 30_000;
  for (let attempt = 0; ; attempt++) {
    const server = fleet.alive[Math.floor(Math.random() * fleet.alive.length)];
    if (!server) throw new Error('no live instance');
    fleet.stats.requests += 1;
    if (attempt > 0) fleet.stats.retried += 1;
    const reply = await send(server.base, tokens.service, method, path, body, 20_000);
    if (!failed(reply) || !retry || Date.now() > deadline) {
      if (attempt > 0 && reply.headers?.get('idempotent-replayed') === 'true') fleet.stats.replayedAfterFailure += 1;
      return reply;
    }
    await sleep(20);
  }
}

/** What every admission's answer must show: no budget past its maximum, no more holds than max_parallel. A replay
 * (a retry of a reserve already applied) shows the scopes as they are now, which is no admission: a late settle
 * (of a hold that expired first) charges its cost whatever the budget holds by then, and may have been applied
 * since. */
function checkAdmission(fleet: Fleet, reply: HttpReply) {
  if (reply.headers?.get('idempotent-replayed') === 'true') return;
  for (const s of reply.body.scopes ?? []) {
    if (s.max_budget !== null && micros(s.spend) + micros(s.reserved) > micros(s.max_budget)) {
      fleet.stats.violations.push(`${s.kind} ${s.id}: spend ${s.spend} + reserved ${s.reserved} > max_budget ${s.max_budget}`);
    }
    if (s.max_parallel !== null && s.in_flight > s.max_parallel) {
      fleet.stats.violations.push(`${s.kind} ${s.id}: in_flight ${s.in_flight} > max_parallel ${s.max_parallel}`);
    }
  }
}

export interface CallerPlan {
  /** The scopes a caller names on its n-th reserve. */
  scopes(caller: number, n: number): Scope[];
  holdCost: readonly string[];
  /** Each at most the smallest hold, so spend + reserved never passes a budget that admitted the hold. */
  settleCost: readonly string[];
  ttlSeconds: number;
  /** Callers whose reserve is lost with the instance: they do not retry it (as if they had crashed too). */
  abandonsOnFailure(caller: number): boolean;
}

export async function runCaller(fleet: Fleet, plan: CallerPlan, caller: number, until: () => boolean): Promise<void> {
  for (let n = 0; !until(); n++) {
    const scopes = plan.scopes(caller, n);
    const hold: Hold = { key: `caller-${caller}-${n}`, scopes, id: null, outcome: 'unanswered' };
    fleet.holds.push(hold);
    const named: Record<string, string[]> = {};
    for (const s of scopes) (named[s.kind] ??= []).push(s.id);
    const body = {
      scopes: named,
      estimate: { cost: plan.holdCost[n % plan.holdCost.length] },
      ttl_seconds: plan.ttlSeconds,
      idempotency_key: hold.key,
    };
    const reply = await call(fleet, 'POST', '/v1/reservations', body, !plan.abandonsOnFailure(caller));
    if (failed(reply)) continue;
    if (reply.status === 429) {
      hold.outcome = 'refused';
      hold.refusal = reply.body.error.type;
      continue;
    }
    if (reply.status !== 201 && reply.status !== 200) {
      fleet.stats.violations.push(`reserve ${hold.key}: ${reply.status} ${JSON.stringify(reply.body).slice(0, 300)}`);
      continue;
    }
    hold.id = reply.body.id;
    checkAdmission(fleet, reply);
    const choice = (caller * 7 + n) % 10;
    if (choice === 9) {
      hold.outcome = 'abandoned';
      continue;
    }
    if (choice >= 7) {
      const released = await call(fleet, 'POST', `/v1/reservations/${hold.id}/release`, undefined, true);
      if (released.status !== 200) fleet.stats.violations.push(`release ${hold.key}: ${released.status} ${JSON.stringify(released.body).slice(0, 300)}`);
      hold.outcome = released.body?.status === 'expired' ? 'abandoned' : 'released';
      continue;
    }
    const cost = plan.settleCost[n % plan.settleCost.length]!;
    const settled = await call(fleet, 'POST', `/v1/reservations/${hold.id}/settle`, { cost }, true);
    if (settled.status !== 200) {
      fleet.stats.violations.push(`settle ${hold.key}: ${settled.status} ${JSON.stringify(settled.body).slice(0, 300)}`);
      continue;
    }
    hold.outcome = 'settled';
    hold.settledCost = cost;
  }
}
