/**
 * Exact decimals at the edge. Money never becomes a binary float here: amounts arrive as decimal strings (or JSON
 * numbers, see exact-json.ts), are checked and normalized as text, and all arithmetic happens in SQL `numeric`.
 */

const decimalPattern = /^([+-]?)(\d+)?(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** Largest magnitude and finest precision accepted: far beyond any budget or per-token price, and small enough
 * that a hostile exponent cannot make a huge string. */
const maxIntegerDigits = 18;
const maxFractionDigits = 30;

export type DecimalResult = { ok: true; value: string } | { ok: false; message: string };

/** Parses "12.50", "1e-7", "-0.3" into plain decimal text ("12.5", "0.0000001", "-0.3"). */
export function parseDecimal(input: string): DecimalResult {
  const match = decimalPattern.exec(input);
  if (!match || (match[2] === undefined && !match[3])) {
    return { ok: false, message: `"${input}" is not a decimal number` };
  }
  const [, sign = '', whole = '', fraction = '', exponentText = '0'] = match;
  const exponent = Number(exponentText);
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > maxIntegerDigits + maxFractionDigits) {
    return { ok: false, message: `"${input}" is out of range` };
  }
  // Shift the decimal point by the exponent, working on the digit string.
  let digits = whole + fraction;
  let point = whole.length + exponent;
  if (point < 0) {
    digits = '0'.repeat(-point) + digits;
    point = 0;
  }
  if (point > digits.length) digits = digits + '0'.repeat(point - digits.length);
  const intPart = digits.slice(0, point).replace(/^0+(?=\d)/, '') || '0';
  const fracPart = digits.slice(point).replace(/0+$/, '');
  if (intPart.length > maxIntegerDigits) return { ok: false, message: `"${input}" is out of range` };
  if (fracPart.length > maxFractionDigits) {
    return { ok: false, message: `"${input}" has more than ${maxFractionDigits} decimal places` };
  }
  const isZero = /^0*$/.test(intPart + fracPart);
  const text = intPart + (fracPart ? '.' + fracPart : '');
  return { ok: true, value: sign === '-' && !isZero ? '-' + text : text };
}

/** A JSON number as the decimal it was written as. JSON numbers reach us through exact-json.ts, which keeps any
 * number a double cannot hold digit for digit as a string, so a number here prints back as its own digits. */
export function decimalFromNumber(value: number): DecimalResult {
  if (!Number.isFinite(value)) return { ok: false, message: `${value} is not a finite number` };
  return parseDecimal(String(value));
}
