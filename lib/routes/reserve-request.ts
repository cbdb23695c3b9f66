import { z } from '@hono/zod-openapi';
import type { Config } from '../config.ts';
import { ApiError } from '../errors.ts';
import { bodyHash } from '../hash.ts';
import type { ReservePayload } from '../ledger.ts';
import { estimateRequest } from '../request-estimate.ts';
import { loadTokenizer } from '../tokenizer.ts';
import { Amount, IdempotencyKey, Reservation, ScopeUsage, Scopes, TokenCount, TtlSeconds } from '../schemas.ts';
import { ModelNameText } from './model-schemas.ts';

// The body of a reserve, shared by POST /v1/reservations and its dry run, POST /v1/reservations/check.

const OutputTokens = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).nullable().optional();

// Unknown fields are refused, not ignored: a misspelt idempotency_key would otherwise hold twice on a retry.
export const ReserveBody = z
  .strictObject({
    scopes: Scopes,
    model: ModelNameText.optional().openapi({ example: 'gpt-4o' }),
    request: z
      .looseObject({
        max_tokens: OutputTokens,
        max_completion_tokens: OutputTokens,
        max_output_tokens: OutputTokens,
        n: z.number().int().min(1).max(128).nullable().optional(),
        best_of: z.number().int().min(1).max(128).nullable().optional(),
      })
      .optional()
      .openapi({
        description: 'The OpenAI-shaped body about to be sent; read to estimate, never stored.',
        example: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 256 },
      }),
    estimate: z
      .strictObject({
        cost: Amount.optional(),
        tokens: TokenCount.optional(),
        seconds: Amount.optional().openapi({ description: 'Length of the audio, for models billed by the second (transcription)' }),
      })
      .optional(),
    ttl_seconds: TtlSeconds.default(600),
    idempotency_key: IdempotencyKey.optional(),
  })
  .superRefine((body, ctx) => {
    if (body.model === undefined && body.estimate?.cost === undefined) {
      ctx.addIssue({ code: 'custom', path: ['model'], message: 'give model (priced from the price table) or estimate.cost' });
    }
  })
  .openapi('ReserveRequest');

export const Reserved = Reservation.extend({ scopes: z.array(ScopeUsage) }).openapi('Reserved');
export const LedgerReserved = Reserved.extend({ replayed: z.boolean().optional() });

/** What the ledger's reserve takes, from a validated body and its Idempotency-Key header. */
export async function reservePayload(body: z.output<typeof ReserveBody>, headerKey: string | undefined,
                                     config: Config): Promise<ReservePayload> {
  if (headerKey !== undefined && body.idempotency_key !== undefined && headerKey !== body.idempotency_key) {
    throw ApiError.invalid([{ path: 'idempotency_key', message: 'differs from the Idempotency-Key header; send one' }]);
  }
  const { idempotency_key: _, ...hashed } = body;
  return {
    scopes: body.scopes,
    model: body.model ?? null,
    request_estimate:
      body.model !== undefined || body.request !== undefined
        ? estimateRequest(body.request ?? {}, await loadTokenizer(body.model))
        : null,
    caller_estimate: body.estimate ?? null,
    ttl_seconds: body.ttl_seconds,
    idempotency_key: body.idempotency_key ?? headerKey ?? null,
    request_hash: await bodyHash(hashed),
    fallback_hold: config.unknownModelHold,
    max_hold: config.maxHold,
    tpm_count: config.tpmCount,
  };
}
