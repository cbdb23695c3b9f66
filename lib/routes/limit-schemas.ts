import { z } from '@hono/zod-openapi';
import { Amount, ScopeId, ScopeKind, ScopeUsage } from '../schemas.ts';

/** `24h` and `1d` are the same duration; each reads back as it was written. */
const BudgetDuration = z
  .enum(['1h', '24h', '1d', '7d', '30d', '1mo'])
  .openapi({ description: '24h and 1d are the same; 1mo is the calendar month in UTC' });

const Count = (max: number) => z.number().int().min(0).max(max);

// Every field optional: absent leaves it as it is, null removes it.
const LimitFields = {
  max_budget: Amount.nullable().optional(),
  soft_budget: Amount.nullable().optional(),
  budget_duration: BudgetDuration.nullable().optional(),
  rpm: Count(2147483647).nullable().optional(),
  tpm: Count(Number.MAX_SAFE_INTEGER).nullable().optional(),
  max_parallel: Count(2147483647).nullable().optional(),
};

export const LimitBody = z
  .strictObject({
    ...LimitFields,
    models: z
      .record(z.string().min(1).max(256), z.strictObject(LimitFields).nullable())
      .nullable()
      .optional()
      .openapi({ description: 'Limits on this scope\'s use of one model; null removes one (or, for the whole map, all).' }),
  })
  .openapi('LimitRequest', {
    example: { max_budget: '50.00', soft_budget: '40.00', budget_duration: '24h', rpm: 600, tpm: 200000, max_parallel: 20 },
  });

export const ScopeParams = z.object({
  kind: ScopeKind.openapi({ param: { name: 'kind', in: 'path' } }),
  id: ScopeId.openapi({ param: { name: 'id', in: 'path' }, example: 't-1' }),
});

export const Limit = ScopeUsage.extend({
  models: z.record(z.string(), ScopeUsage.omit({ kind: true, id: true })),
  created_at: z.string().nullable(),
  updated_at: z.string().nullable(),
}).openapi('Limit');
