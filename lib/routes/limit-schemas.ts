import { z } from '@hono/zod-openapi';
import { Amount, ScopeId, ScopeKind, ScopeUsage } from '../schemas.ts';
import { ModelNameText } from './model-schemas.ts';

/** `24h` and `1d` are the same duration; each reads back as it was written. */
const BudgetDuration = z
  .enum(['1h', '24h', '1d', '7d', '30d', '1mo'])
  .openapi({ description: '24h and 1d are the same' });

/** How a budget's periods are laid out (an anchor, when given, lays them from itself). */
const BudgetAlign = z.enum(['rolling', 'calendar']).openapi({
  description: 'rolling: from when the duration was set (the default, but for 1mo); calendar: UTC hours, days, ' +
    'ISO weeks (Monday) or months (the default for 1mo)',
});

const BudgetAnchor = z.iso
  .datetime({ offset: true, message: 'an ISO 8601 time with its offset, e.g. 2026-01-15T00:00:00Z' })
  .openapi({ description: 'A billing anchor: periods of the duration counted from it (monthly from the 15th, say)' });

const Admission = z.enum(['strict', 'fit']).openapi({
  description: 'strict (default): a hold must fit whole; fit: a hold shrinks to what remains of the budget',
});

const Count = (max: number) => z.number().int().min(0).max(max);

// Every field optional: absent leaves it as it is, null removes it.
const LimitFields = {
  max_budget: Amount.nullable().optional(),
  soft_budget: Amount.nullable().optional(),
  budget_duration: BudgetDuration.nullable().optional(),
  budget_align: BudgetAlign.nullable().optional(),
  budget_anchor: BudgetAnchor.nullable().optional(),
  admission: Admission.nullable().optional(),
  rpm: Count(2147483647).nullable().optional(),
  tpm: Count(Number.MAX_SAFE_INTEGER).nullable().optional(),
  itpm: Count(Number.MAX_SAFE_INTEGER).nullable().optional().openapi({ description: 'input tokens per window' }),
  otpm: Count(Number.MAX_SAFE_INTEGER).nullable().optional().openapi({ description: 'output tokens per window' }),
  max_parallel: Count(2147483647).nullable().optional(),
};

/** A budget window: another budget on the scope, with a period of its own, enforced with the others. */
const BudgetWindow = z
  .strictObject({
    max_budget: Amount,
    budget_duration: BudgetDuration,
    soft_budget: Amount.nullable().optional(),
    align: BudgetAlign.optional(),
    anchor: BudgetAnchor.optional(),
  })
  .superRefine((w, ctx) => checkPeriodLayout(w.budget_duration, w.align, w.anchor, ['align'], ctx));

/** Maximum budget windows on one scope: each is one more counter row every reserve on the scope locks. */
export const maxBudgetWindows = 8;

type PeriodIssues = { addIssue(issue: { code: 'custom'; path: string[]; message: string }): void };

function checkPeriodLayout(duration: string | null | undefined, align: string | null | undefined,
                           anchor: string | null | undefined, alignPath: string[], ctx: PeriodIssues): void {
  if (align === 'calendar' && duration === '30d') {
    ctx.addIssue({ code: 'custom', path: alignPath, message: '30d has no calendar boundaries; use 1mo for the calendar month' });
  }
  if (align && anchor) {
    ctx.addIssue({ code: 'custom', path: alignPath, message: 'give align or an anchor, not both: an anchor lays out the periods itself' });
  }
}

const checkLimitLayout = (body: { budget_duration?: string | null; budget_align?: string | null; budget_anchor?: string | null },
                          ctx: PeriodIssues) => checkPeriodLayout(body.budget_duration, body.budget_align, body.budget_anchor, ['budget_align'], ctx);

export const LimitBody = z
  .strictObject({
    ...LimitFields,
    windows: z
      .array(BudgetWindow)
      .max(maxBudgetWindows, `at most ${maxBudgetWindows} budget windows`)
      .nullable()
      .optional()
      .openapi({ description: 'Budget windows besides max_budget, each enforced on every hold; replaces the list (null removes all).' }),
    models: z
      .record(ModelNameText, z.strictObject(LimitFields).superRefine(checkLimitLayout).nullable())
      .nullable()
      .optional()
      .openapi({ description: 'Limits on this scope\'s use of one model; null removes one (or, for the whole map, all).' }),
  })
  .superRefine(checkLimitLayout)
  .openapi('LimitRequest', {
    example: {
      max_budget: '50.00', soft_budget: '40.00', budget_duration: '24h', rpm: 600, tpm: 200000, max_parallel: 20,
      windows: [{ max_budget: '500', budget_duration: '1mo', anchor: '2026-01-15T00:00:00Z' }],
    },
  });

export const ScopeParams = z.object({
  kind: ScopeKind.openapi({ param: { name: 'kind', in: 'path' } }),
  id: ScopeId.openapi({ param: { name: 'id', in: 'path' }, example: 't-1' }),
});

export const Limit = ScopeUsage.extend({
  windows: z.array(ScopeUsage.omit({ kind: true, id: true })),
  models: z.record(z.string(), ScopeUsage.omit({ kind: true, id: true })),
  created_at: z.string().nullable(),
  updated_at: z.string().nullable(),
}).openapi('Limit');
