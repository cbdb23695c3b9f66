import { describe, expect, it } from 'vitest';
import { bodyHash, canonicalJson, sha256Hex } from '../../lib/hash.ts';

/** What every runtime has: Web Crypto's digest, the reference the fast path must agree with. */
async function webCryptoHex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

describe('sha256Hex', () => {
  it('is SHA-256 of the UTF-8 text', async () => {
    expect(await sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(await sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  // Small texts take node:crypto's synchronous hash where the runtime has it, large ones Web Crypto.
  it.each([
    ['ASCII', 'sk-'.repeat(13)],
    ['non-ASCII', 'prix: 0,25 € — 日本語 🎉'],
    ['an unpaired surrogate (encoded as U+FFFD)', 'a\ud800b'],
    ['just past the synchronous limit', 'x'.repeat(64 * 1024 + 1)],
    ['a large body', '{"images":"' + 'é'.repeat(300_000) + '"}'],
  ])('agrees with Web Crypto on %s', async (_, text) => {
    expect(await sha256Hex(text)).toBe(await webCryptoHex(text));
  });
});

describe('bodyHash', () => {
  it('hashes equal bodies equal whatever their key order', async () => {
    expect(canonicalJson({ b: 1, a: [{ d: null, c: 'x' }] })).toBe('{"a":[{"c":"x","d":null}],"b":1}');
    expect(await bodyHash({ b: 1, a: 2 })).toBe(await bodyHash({ a: 2, b: 1 }));
  });
});
