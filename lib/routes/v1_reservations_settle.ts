import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { bodyHash } from '../hash.ts';
import { normalizeUsage, rateLimitedInputTokens } from '../provider-usage.ts';
import { Amount, errorResponses, Money, replayedHeader, Reservation, ReservationId } from '../schemas.ts';

const SettleBody = z
  .strictObject({
    usage: z.record(z.string(), z.unknown()).optional().openapi({
      description: "The provider's usage object as returned (OpenAI, OpenAI Responses, Anthropic or Gemini).",
      example: { prompt_tokens: 1200, completion_tokens: 300, prompt_tokens_details: { cached_tokens: 1000 } },
    }),
    images: z.number().int().min(0).max(10000).optional(),
    cost: Amount.optional(),
  })
  .refine((b) => b.usage !== undefined || b.images !== undefined || b.cost !== undefined, {
    message: 'give at least one of usage, images, cost',
  })
  .openapi('SettleRequest');

const Settled = Reservation.extend({ released_cost: Money, late: z.boolean() }).openapi('Settled');
const LedgerSettled = Settled.extend({ replayed: z.boolean().optional() });

export const route = createRoute({
  method: 'post',
  path: '/v1/reservations/{id}/settle',
  summary: 'Charge the actual cost, exactly once',
  description:
    'The actual cost is `cost` when given, else priced from `usage` and `images` at the prices in force when the ' +
    'hold was made. Charged in full even above the hold. The same body again answers the same (with the header ' +
    `${replayedHeader}: true); a different one is 409. ` +
    'A settle after the hold expired still charges, once.',
  security: [{ bearer: [] }],
  middleware: [allow('service')] as const,
  request: {
    params: z.object({ id: ReservationId }),
    body: { content: { 'application/json': { schema: SettleBody } }, required: true },
  },
  responses: {
    200: { description: 'Settled', content: { 'application/json': { schema: Settled } } },
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { id } = c.req.valid('param');
    const body = c.req.valid('json');
    let usage;
    if (body.usage !== undefined) {
      const normalized = normalizeUsage(body.usage);
      if (!normalized.ok) {
        throw ApiError.invalid([{ path: normalized.path ? `usage.${normalized.path}` : 'usage', message: normalized.message }]);
      }
      usage = normalized.usage;
    }
    const result = await c.var.ledger.settle(id, {
      cost: body.cost,
      usage,
      images: body.images,
      actual_input_tokens: usage ? rateLimitedInputTokens(usage) : undefined,
      actual_output_tokens: usage?.output_tokens,
      settle_hash: await bodyHash(body),
    });
    // A repeated settle answers exactly as the first did; only the header tells it apart.
    const { replayed, ...settled } = LedgerSettled.parse(result);
    return c.json(settled, 200, replayed ? { [replayedHeader]: 'true' } : {});
  });
}
