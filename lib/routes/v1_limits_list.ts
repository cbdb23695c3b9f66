import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { errorResponses, ScopeKind, type ScopeRef, storableText } from '../schemas.ts';
import { Limit } from './limit-schemas.ts';

const Query = z.object({
  kind: ScopeKind.optional(),
  cursor: z.string().max(2048).optional().openapi({ description: 'next_cursor of the previous page' }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const Page = z.object({ data: z.array(Limit), next_cursor: z.string().nullable() }).openapi('LimitPage');

// A cursor is the last scope of a page: its UTF-8 JSON in base64url. Opaque to callers.
function encodeCursor(scope: ScopeRef): string {
  const bytes = new TextEncoder().encode(JSON.stringify([scope.kind, scope.id]));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function decodeCursor(cursor: string): ScopeRef {
  try {
    const binary = atob(cursor.replace(/-/g, '+').replace(/_/g, '/'));
    const json: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(binary, (ch) => ch.charCodeAt(0))));
    if (Array.isArray(json) && json.length === 2 && typeof json[0] === 'string' && typeof json[1] === 'string'
        && storableText(json[0]) && storableText(json[1])) {
      return { kind: json[0], id: json[1] };
    }
  } catch {
    // fall through
  }
  throw ApiError.invalid([{ path: 'cursor', message: 'not a cursor this API gave out; pass next_cursor unchanged' }]);
}

export const route = createRoute({
  method: 'get',
  path: '/v1/limits',
  summary: 'List scopes with their limits and usage',
  description: 'Every scope that has a limit or has been named by a reservation, in (kind, id) order, a page at a time.',
  security: [{ bearer: [] }],
  middleware: [allow('service')] as const,
  request: { query: Query },
  responses: {
    200: { description: 'A page of scopes', content: { 'application/json': { schema: Page } } },
    ...errorResponses(400, 401, 403, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const { kind, cursor, limit } = c.req.valid('query');
    const result = await c.var.ledger.listLimits(kind ?? null, cursor ? decodeCursor(cursor) : null, limit);
    const page = z.object({ data: z.array(Limit), next: z.object({ kind: z.string(), id: z.string() }).nullable() }).parse(result);
    return c.json({ data: page.data, next_cursor: page.next ? encodeCursor(page.next) : null }, 200);
  });
}
