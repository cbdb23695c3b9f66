import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors.ts';

/** The deepest nesting of arrays and objects a request body may have. Real bodies (a chat request with tool schemas,
 * a price-table entry) nest a few tens of levels; code that walks a body (hashing it for idempotency, estimating its
 * tokens) recurses, and a body nested thousands of levels deep must be a 400, never a stack overflow. */
export const maxJsonDepth = 128;

/** Refuses a JSON body nested deeper than maxJsonDepth, naming the field it is under. A malformed body is left for
 * the validator to report. */
export const jsonDepthLimit: MiddlewareHandler = async (c, next) => {
  if (!/^application\/([\w.-]+\+)?json/i.test(c.req.header('content-type') ?? '')) return next();
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return next();
  }
  const path = pathPastDepth(body, maxJsonDepth);
  if (path !== null) {
    throw ApiError.invalid([{ path: path.slice(0, 4).join('.'), message: `nested deeper than ${maxJsonDepth} levels of arrays and objects` }]);
  }
  return next();
};

/** Where a value nests deeper than `max`, as the path to that point; null when it does not. Iterative. */
function pathPastDepth(value: unknown, max: number): string[] | null {
  const stack: Array<{ value: unknown; path: string[] }> = [{ value, path: [] }];
  for (let item = stack.pop(); item; item = stack.pop()) {
    if (typeof item.value !== 'object' || item.value === null) continue;
    if (item.path.length >= max) return item.path;
    for (const [key, child] of Object.entries(item.value)) stack.push({ value: child, path: [...item.path, key] });
  }
  return null;
}
