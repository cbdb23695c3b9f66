// Model-based test: random sequences of reserves (on random scope sets with random budgets, periods, budget windows,
// RPM, TPM and max_parallel), settles, releases, extends, checks, sweeps, clock jumps across rate windows, periods
// and expiries, idempotent retries and reused keys, run against the real database through the HTTP app and against
// the in-memory model of the rules (test/model/ledger-model.ts). After every step the answers, every scope's usage
// and the audit agree. A failure prints the shrunk sequence and the seed (FC_SEED=<seed> replays it).

import { fc, it } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, uniqueId } from './support/harness.ts';
import { commandArbitraries, expectAgreement, limitBody, type Real } from './model/commands.ts';
import { type LimitSpec, LedgerModel, type ScopeSpec } from './model/ledger-model.ts';

/** The scopes of every run: two teams (so one kind names two ids), a key and an org. */
const labels = [
  { kind: 'team', id: 'a' },
  { kind: 'team', id: 'b' },
  { kind: 'key', id: 'k' },
  { kind: 'org', id: 'o' },
] as const;

const budgets = ['0', '0.3', '0.5', '1', '2.5'] as const;
const limitSpec: fc.Arbitrary<LimitSpec> = fc.record({
  max_budget: fc.option(fc.constantFrom(...budgets), { nil: null }),
  budget_duration: fc.option(fc.constantFrom('1h' as const, '24h' as const), { nil: null }),
  rpm: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
  tpm: fc.option(fc.constantFrom(100, 400, 1000), { nil: null }),
  max_parallel: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null }),
  window: fc.option(fc.record({ max_budget: fc.constantFrom(...budgets), budget_duration: fc.constantFrom('1h' as const, '24h' as const) }), {
    nil: null,
    freq: 3,
  }),
});

// Bounded so that both backends together stay near a minute on CI's two cores; FC_RUNS raises it locally.
const numRuns = Number(process.env.FC_RUNS ?? 40);
const maxCommands = Number(process.env.FC_COMMANDS ?? 40);
const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);

describe.each(backends)('the ledger agrees with a model of its rules (%s)', (backend) => {
  let h: Harness;
  const stats = { started: 0, runs: 0, operations: 0, comparisons: 0 };
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(async () => {
    // A run that did not complete is one that found a difference (or was a step of shrinking one).
    console.log(`model-based (${backend}): ${stats.runs} runs, ${stats.operations} operations, ${stats.comparisons} scope comparisons, mismatches: ${stats.started - stats.runs}`);
    await h?.close();
  });

  it.prop([fc.array(limitSpec, { minLength: labels.length, maxLength: labels.length }), fc.commands(commandArbitraries(labels.map((l) => `${l.kind}:${l.id}`)), { maxCommands, size: 'max' })], {
    numRuns,
    seed,
    // Each run is a few hundred requests; shrinking a failure is bounded too.
    interruptAfterTimeLimit: 240_000,
    markInterruptAsFailure: false,
  })('random operations: same answers, same usage, audit ok', async (limits, commands) => {
    // Start clean: two days on, every hold of the runs before has expired and is swept, and their refusals forgotten.
    stats.started += 1;
    h.clock.advance(2 * 86_400);
    expect((await h.as('cron')('POST', '/v1/sweep')).status).toBe(200);
    const prefix = uniqueId('m');
    const scopes: ScopeSpec[] = labels.map((l, i) => ({ ...l, limit: limits[i]! }));
    const real: Real = { h, scopes: new Map(), prefix, stats: { operations: 0, comparisons: 0 } };
    for (const scope of scopes) {
      const id = `${prefix}-${scope.id}`;
      real.scopes.set(`${scope.kind}:${scope.id}`, { kind: scope.kind, id });
      const reply = await h.admin('PUT', `/v1/limits/${scope.kind}/${id}`, limitBody(scope));
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    }
    const model = new LedgerModel(scopes, h.clock.now()!.getTime());
    await expectAgreement(model, real, 'setup');
    await fc.asyncModelRun(() => ({ model, real }), commands);
    stats.runs += 1;
    stats.operations += real.stats.operations;
    stats.comparisons += real.stats.comparisons;
  }, 300_000);
});
