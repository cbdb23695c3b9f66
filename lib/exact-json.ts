import type { MiddlewareHandler } from 'hono';
import { isSafeNumber, parse } from 'lossless-json';

// Only a JSON number with more than 15 significant digits, or a huge exponent, can differ from the double that
// JSON.parse makes of it. Such a number needs a run of digits this long (or an exponent this wide) in the text.
const mayHoldUnsafeNumber = /\d[\d.]{15,}|[eE][+-]?\d{3,}/;

/**
 * Keeps every JSON number of a request body exact. A number that a double holds digit for digit stays a number
 * (and prints back as the digits that were sent); any other becomes the string of its digits, which decimal
 * fields accept as they accept strings and integer fields reject as not a number. So `0.1` is 0.1, and
 * `0.100000000000000000001` is neither rounded nor lost.
 */
export const exactJsonNumbers: MiddlewareHandler = async (c, next) => {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/([\w.-]+\+)?json/i.test(type)) return next();
  const text = await c.req.text();
  if (!mayHoldUnsafeNumber.test(text)) return next();
  let value: unknown;
  try {
    value = parse(text, null, (digits) => (isSafeNumber(digits) ? Number(digits) : digits));
  } catch {
    return next(); // malformed: left for the validator to report
  }
  // Hono reads the body for validation from its cache; hand it the exact parse instead of the raw text.
  delete c.req.bodyCache.text;
  c.req.bodyCache.json = Promise.resolve(value);
  return next();
};
