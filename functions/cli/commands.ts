// The CLI's commands that go through the API, each answering with its JSON (for --json) and a text rendering.
import { readFileSync } from 'node:fs';
import { isSafeNumber, parse } from 'lossless-json';
import type { Limit, LimitRequest, SpendgateClient } from '../../lib/client.ts';
import { cell, fields, table } from './table.ts';

/** The command line is wrong: exit 2 with the usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface Output {
  json: unknown;
  text: string;
  /** Non-zero for an answer that is not an error but is not ok either (an audit that found mismatches). */
  exitCode?: number;
}

export type Flags = Partial<Record<'kind' | 'model' | 'max-budget' | 'soft-budget' | 'budget-duration' | 'rpm' | 'tpm' | 'max-parallel', string>>;

export interface Invocation {
  args: string[];
  flags: Flags;
  client: SpendgateClient;
}

export const auditMismatchExitCode = 4;

export const commands: Record<string, { usage: string; run(call: Invocation): Promise<Output> }> = {
  'limits set': {
    usage: 'limits set KIND ID [--max-budget USD] [--soft-budget USD] [--budget-duration 1h|24h|1d|7d|30d|1mo] [--rpm N] [--tpm N] [--max-parallel N] [--model NAME]',
    async run({ args, flags, client }) {
      const [kind, id] = two(args, 'KIND ID');
      const limit = await client.limits.set(kind, id, limitBody(flags));
      return { json: limit, text: limitText(limit) };
    },
  },
  'limits get': {
    usage: 'limits get KIND ID',
    async run({ args, client }) {
      const [kind, id] = two(args, 'KIND ID');
      const limit = await client.limits.get(kind, id);
      return { json: limit, text: limitText(limit) };
    },
  },
  'limits list': {
    usage: 'limits list [--kind KIND]',
    async run({ args, flags, client }) {
      none(args);
      const all: Limit[] = [];
      for await (const limit of client.limits.listAll({ kind: flags.kind })) all.push(limit);
      const rows = all.map((l) => [l.kind, l.id, l.max_budget, l.spend, l.reserved, l.remaining, l.budget_duration, l.rpm, l.tpm, l.max_parallel, l.in_flight]);
      return { json: all, text: table(['KIND', 'ID', 'MAX_BUDGET', 'SPEND', 'RESERVED', 'REMAINING', 'PERIOD', 'RPM', 'TPM', 'PARALLEL', 'IN_FLIGHT'], rows) };
    },
  },
  'limits delete': {
    usage: 'limits delete KIND ID',
    async run({ args, client }) {
      const [kind, id] = two(args, 'KIND ID');
      const deleted = await client.limits.delete(kind, id);
      return { json: deleted, text: `deleted the limit of ${kind}/${id} (its spend history stays)` };
    },
  },
  'models import': {
    usage: 'models import FILE   (LiteLLM model_prices_and_context_window.json; - reads stdin)',
    async run({ args, client }) {
      const file = one(args, 'FILE');
      const result = await client.models.import(readPriceFile(file));
      const skipped = result.skipped.length === 0 ? '' : '\n\n' + table(['SKIPPED', 'REASON'], result.skipped.map((s) => [s.name, s.reason]));
      return { json: result, text: `imported ${result.imported} models, skipped ${result.skipped.length}${skipped}` };
    },
  },
  'models get': {
    usage: 'models get NAME',
    async run({ args, client }) {
      const name = one(args, 'NAME');
      const model = await client.models.get(name);
      return { json: model, text: fields(model, ['name', 'litellm_provider', 'mode', 'input_cost_per_token', 'output_cost_per_token']) };
    },
  },
  'reservations get': {
    usage: 'reservations get ID',
    async run({ args, client }) {
      const id = one(args, 'ID');
      const reservation = await client.reservations.get(id);
      return { json: reservation, text: fields(reservation, ['id', 'status', 'model', 'reserved_cost', 'actual_cost', 'cost_source', 'created_at', 'expires_at']) };
    },
  },
  sweep: {
    usage: 'sweep',
    async run({ args, client }) {
      none(args);
      const swept = await client.sweep();
      return { json: swept, text: `expired ${swept.expired} held reservations${swept.complete ? '' : '; more were due: run sweep again'}` };
    },
  },
  audit: {
    usage: 'audit',
    async run({ args, client }) {
      none(args);
      const report = await client.audit();
      if (report.ok) return { json: report, text: `ok: ${report.scopes_checked} scopes checked, every counter equals the ledger` };
      const rows = report.mismatches.map((m) => [m.kind, m.id, m.field, m.counter, m.ledger]);
      return {
        json: report,
        text: `MISMATCH: ${report.mismatches.length} counters differ from the ledger\n\n${table(['KIND', 'ID', 'FIELD', 'COUNTER', 'LEDGER'], rows)}`,
        exitCode: auditMismatchExitCode,
      };
    },
  },
};

function none(args: string[]): void {
  if (args.length > 0) throw new UsageError(`unexpected argument ${args[0]}`);
}

function one(args: string[], name: string): string {
  const [value] = args;
  if (value === undefined || args.length !== 1) throw new UsageError(`give ${name}`);
  return value;
}

function two(args: string[], names: string): [string, string] {
  const [a, b] = args;
  if (a === undefined || b === undefined || args.length !== 2) throw new UsageError(`give ${names}`);
  return [a, b];
}

/** The flags as a limit body: "none" removes a field (null), an absent flag leaves it as it is. */
function limitBody(flags: Flags): LimitRequest {
  const amount = (value: string | undefined) => (value === 'none' ? null : value);
  const count = (flag: string, value: string | undefined) => {
    if (value === undefined || value === 'none') return value === 'none' ? null : undefined;
    if (!/^\d+$/.test(value)) throw new UsageError(`--${flag} takes a whole number or "none", not "${value}"`);
    return Number(value);
  };
  const duration = flags['budget-duration'];
  const body = {
    max_budget: amount(flags['max-budget']),
    soft_budget: amount(flags['soft-budget']),
    budget_duration: duration === 'none' ? null : (duration as LimitRequest['budget_duration']),
    rpm: count('rpm', flags.rpm),
    tpm: count('tpm', flags.tpm),
    max_parallel: count('max-parallel', flags['max-parallel']),
  };
  const given = Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined));
  if (Object.keys(given).length === 0) throw new UsageError('give at least one of --max-budget, --soft-budget, --budget-duration, --rpm, --tpm, --max-parallel');
  return flags.model === undefined ? given : { models: { [flags.model]: given } };
}

const limitOrder = ['kind', 'id', 'max_budget', 'soft_budget', 'budget_duration', 'spend', 'reserved', 'remaining', 'period_start',
  'resets_at', 'rpm', 'tpm', 'max_parallel', 'requests_in_window', 'tokens_in_window', 'in_flight'];

function limitText(limit: Limit): string {
  const { models, ...scope } = limit;
  const text = fields(scope, limitOrder);
  const rows = Object.entries(models).map(([name, m]) => [name, m.max_budget, m.spend, m.reserved, m.rpm, m.tpm, m.max_parallel]);
  return rows.length === 0 ? text : `${text}\n\n${table(['MODEL', 'MAX_BUDGET', 'SPEND', 'RESERVED', 'RPM', 'TPM', 'PARALLEL'], rows)}`;
}

/** The price file, with every price kept exact: a number a double cannot hold digit for digit becomes its digits
 * as a string, which the API reads exactly (as exact-json.ts does on the server). */
function readPriceFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${error instanceof Error ? error.message : cell(error)}`);
  }
  try {
    const value = parse(text, null, (digits) => (isSafeNumber(digits) ? Number(digits) : digits));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object of model names');
    return value as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(`${file} is not a price file: ${error instanceof Error ? error.message : cell(error)}`);
  }
}
