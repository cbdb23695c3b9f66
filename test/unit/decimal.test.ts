import { describe, expect, it } from 'vitest';
import { decimalFromNumber, parseDecimal } from '../../lib/decimal.ts';

describe('parseDecimal', () => {
  it.each([
    ['12.50', '12.5'],
    ['0012.500', '12.5'],
    ['.5', '0.5'],
    ['5.', '5'],
    ['1e-7', '0.0000001'],
    ['2.5E-06', '0.0000025'],
    ['1.5e3', '1500'],
    ['-0.30', '-0.3'],
    ['-0', '0'],
    ['+7', '7'],
    ['0.100000000000000000001', '0.100000000000000000001'],
    ['999999999999999999', '999999999999999999'],
  ])('%s → %s', (input, expected) => {
    expect(parseDecimal(input)).toEqual({ ok: true, value: expected });
  });

  it.each(['', '.', 'abc', '1.2.3', '1e', 'NaN', 'Infinity', '0x10', '1,5', '1e999', '1e-999', '1' + '0'.repeat(19), '0.' + '1'.repeat(31)])(
    'rejects %j',
    (input) => {
      expect(parseDecimal(input).ok).toBe(false);
    },
  );
});

describe('decimalFromNumber', () => {
  it('prints a double back as the digits a JSON serializer wrote for it', () => {
    expect(decimalFromNumber(0.1)).toEqual({ ok: true, value: '0.1' });
    expect(decimalFromNumber(0.1 + 0.2)).toEqual({ ok: true, value: '0.30000000000000004' });
    expect(decimalFromNumber(2.5e-6)).toEqual({ ok: true, value: '0.0000025' });
    expect(decimalFromNumber(Number.POSITIVE_INFINITY).ok).toBe(false);
    expect(decimalFromNumber(Number.NaN).ok).toBe(false);
  });
});
