import { z } from '@hono/zod-openapi';
import { decimalFromNumber, parseDecimal } from '../decimal.ts';
import { Amount, storableText, unstorableText } from '../schemas.ts';

const Price = Amount.nullable().optional();
const Tokens = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional();

/**
 * One entry of LiteLLM's model_prices_and_context_window.json. The fields spendgate prices with are checked;
 * every other field is kept as given. A missing price means unknown (never 0); an explicit 0 means free.
 */
export const ModelEntry = z
  .looseObject({
    mode: z.string().max(64).optional(),
    litellm_provider: z.string().max(256).optional(),
    max_input_tokens: Tokens,
    max_output_tokens: Tokens,
    input_cost_per_token: Price,
    output_cost_per_token: Price,
    output_cost_per_reasoning_token: Price,
    cache_read_input_token_cost: Price,
    cache_creation_input_token_cost: Price,
    input_cost_per_image: Price,
    output_cost_per_image: Price,
    input_cost_per_pixel: Price,
    output_cost_per_pixel: Price,
  })
  .superRefine((entry, ctx) => {
    // The entry is stored whole, unknown fields too: every key and string in it must be text the database can store.
    const unstorable = unstorablePath(entry);
    if (unstorable) ctx.addIssue({ code: 'custom', path: unstorable, message: unstorableText });
    // Any other top-level price (a key naming a cost, given as a number or a string) must be a decimal too: the
    // database stores prices as exact numerics.
    for (const [key, value] of Object.entries(entry)) {
      if (!key.includes('cost') || (typeof value !== 'string' && typeof value !== 'number')) continue;
      const parsed = typeof value === 'number' ? decimalFromNumber(value) : parseDecimal(value);
      if (!parsed.ok) ctx.addIssue({ code: 'custom', path: [key], message: parsed.message });
      else if (parsed.value.startsWith('-')) ctx.addIssue({ code: 'custom', path: [key], message: 'must not be negative' });
    }
  })
  .openapi('ModelEntry', {
    example: { litellm_provider: 'openai', mode: 'chat', max_input_tokens: 128000, max_output_tokens: 16384, input_cost_per_token: '0.0000025', output_cost_per_token: '0.00001' },
  });

export const Model = z.looseObject({ name: z.string(), updated_at: z.string() }).openapi('Model');

/** A model name: any text but one starting with "@", which the ledger keeps for a scope's budget windows. */
export const ModelNameText = z
  .string()
  .min(1)
  .max(256)
  .refine((name) => !name.startsWith('@'), 'a model name must not start with "@"')
  .refine(storableText, unstorableText);

/** The path of the first key or string in a JSON value that the database cannot store; null when there is none.
 * Iterative, so that no nesting depth can overflow the stack. */
function unstorablePath(value: unknown): string[] | null {
  const stack: Array<{ value: unknown; path: string[] }> = [{ value, path: [] }];
  for (let item = stack.pop(); item; item = stack.pop()) {
    if (typeof item.value === 'string' && !storableText(item.value)) return item.path;
    if (typeof item.value !== 'object' || item.value === null) continue;
    for (const [key, child] of Object.entries(item.value)) {
      if (!storableText(key)) return [...item.path, key];
      stack.push({ value: child, path: [...item.path, key] });
    }
  }
  return null;
}

export const ModelName = ModelNameText.openapi({
  param: { name: 'name', in: 'path' }, example: 'gpt-4o', description: 'URL-encode a slash: openai%2Fgpt-4o',
});
