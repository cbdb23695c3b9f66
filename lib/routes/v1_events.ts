import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { errorResponses, ScopeId, ScopeKind } from '../schemas.ts';

const EventType = z.enum(['soft_budget', 'budget_80', 'budget_100', 'budget_refused']);

const Query = z.object({
  type: EventType.optional(),
  kind: ScopeKind.optional(),
  id: ScopeId.optional(),
  cursor: z.string().max(2048).optional().openapi({ description: 'next_cursor of the previous page' }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const Event = z
  .object({
    event_id: z.uuid(),
    type: EventType,
    scope: z.looseObject({ kind: z.string(), id: z.string() }),
    period_start: z.string().nullable(),
    created_at: z.string(),
    details: z.record(z.string(), z.unknown()),
  })
  .openapi('Event');

const Page = z.object({ data: z.array(Event), next_cursor: z.string().nullable() }).openapi('EventPage');

const CursorShape = z.object({ created_at: z.iso.datetime(), event_id: z.uuid() });

// A cursor is the last event of a page, as base64url JSON. Opaque to callers.
function encodeCursor(last: z.infer<typeof CursorShape>): string {
  return btoa(JSON.stringify(last)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function decodeCursor(cursor: string): z.infer<typeof CursorShape> {
  try {
    const parsed = CursorShape.safeParse(JSON.parse(atob(cursor.replace(/-/g, '+').replace(/_/g, '/'))));
    if (parsed.success) return parsed.data;
  } catch {
    // fall through
  }
  throw ApiError.invalid([{ path: 'cursor', message: 'not a cursor this API gave out; pass next_cursor unchanged' }]);
}

export const route = createRoute({
  method: 'get',
  path: '/v1/events',
  summary: 'Budget events, newest first',
  description:
    'Recorded in the transaction that caused them, once per scope and budget period: soft_budget, budget_80 and ' +
    'budget_100 when spend + reserved reaches soft_budget, 80% and 100% of max_budget; budget_refused on the ' +
    "period's first refusal by that budget.",
  security: [{ bearer: [] }],
  middleware: [allow('service')] as const,
  request: { query: Query },
  responses: {
    200: { description: 'A page of events', content: { 'application/json': { schema: Page } } },
    ...errorResponses(400, 401, 403, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { type, kind, id, cursor, limit } = c.req.valid('query');
    const result = await c.var.ledger.listEvents({ type: type ?? null, kind: kind ?? null, id: id ?? null },
                                                 cursor ? decodeCursor(cursor) : null, limit);
    const page = z.object({ data: z.array(Event), next: CursorShape.nullable() }).parse(result);
    return c.json({ data: page.data, next_cursor: page.next ? encodeCursor(page.next) : null }, 200);
  });
}
