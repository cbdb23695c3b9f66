/** JSON with object keys sorted, so that equal bodies hash equal whatever order their keys came in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']';
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return '{' + entries.map(([k, v]) => JSON.stringify(k) + ':' + canonicalJson(v)).join(',') + '}';
  }
  return JSON.stringify(value) ?? 'null';
}

/** SHA-256 of the canonical JSON, hex. Identifies a request body for idempotency. */
export function bodyHash(value: unknown): Promise<string> {
  return sha256Hex(canonicalJson(value));
}

// Web Crypto's digest is the portable SHA-256, but on Node each call is a job sent to the thread pool and back:
// 20-40 µs of CPU in a quiet process, about 100 µs under load, which made the digests of a request (its body's, the
// bearer token's) cost more than everything else the app does for it. Where the runtime has node:crypto (Node 20.16+, Deno, Bun,
// Workers with nodejs_compat) its synchronous hash takes about 1 µs. It is found with process.getBuiltinModule, not
// imported, so that lib/ still loads where there is none (Vercel's Edge runtime), which keeps Web Crypto.
const nodeCrypto = globalThis.process?.getBuiltinModule?.('node:crypto');
// Longer texts go to Web Crypto even so: it hashes off the main thread, so a huge body (a reserve may carry 32 MiB
// of images) does not hold up every other request while it is hashed.
const syncHashLimit = 64 * 1024;
const utf8 = new TextEncoder();

/** node:crypto's SHA-256 of the text, when it is there and the text short enough; else null. Both encode the text
 * as UTF-8 alike, an unpaired surrogate as U+FFFD. */
function nodeHash(text: string) {
  return nodeCrypto && text.length <= syncHashLimit ? nodeCrypto.createHash('sha256').update(text, 'utf8') : null;
}

async function webCryptoHash(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', utf8.encode(text)));
}

/** SHA-256 of UTF-8 text, hex. */
export async function sha256Hex(text: string): Promise<string> {
  return nodeHash(text)?.digest('hex') ?? Array.from(await webCryptoHash(text), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** SHA-256 of UTF-8 text. */
export async function sha256(text: string): Promise<Uint8Array> {
  return nodeHash(text)?.digest() ?? webCryptoHash(text);
}
