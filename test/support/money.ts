// Money in tests as exact integers of micro-dollars: the model never lets a float touch an amount.

const scale = 6;

/** "0.25" → 250000n. Six decimal places at most (what the model's amounts use). */
export function micros(text: string): bigint {
  const match = /^(\d+)(?:\.(\d{0,6}))?$/.exec(text);
  if (!match) throw new Error(`not a decimal of at most ${scale} places: ${text}`);
  const [, whole = '0', fraction = ''] = match;
  return BigInt(whole + fraction.padEnd(scale, '0'));
}

/** 250000n → "0.250000", as spendgate.money prints an amount of six places or fewer. */
export function money(value: bigint): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/** ⌈a / b⌉ for non-negative a and positive b. */
export function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}
