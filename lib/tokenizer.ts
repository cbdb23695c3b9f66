/**
 * Which tokenizer counts a request's input text, chosen by model name, and loading it.
 *
 * OpenAI's encodings are public, and gpt-tokenizer reproduces them exactly in plain JS (no WASM, no Node
 * API), so for OpenAI models the text count is the provider's own. Every other model (Anthropic, Gemini,
 * Mistral, Llama, DeepSeek, ...) keeps the UTF-8 byte bound: its tokenizer is not public in JS or differs,
 * and a borrowed tokenizer could count fewer tokens than the provider bills, letting a call spend money
 * nobody reserved. bench/tokenizer.ts has the figures behind the choice of library and the size cap.
 */

import { CL100K_TOKEN_SPLIT_REGEX, O200K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';

export type TokenEncoding = 'o200k_base' | 'cl100k_base';

/** How a reservation's input tokens were counted: a real encoding, or one token per UTF-8 byte. */
export type InputCounter = TokenEncoding | 'utf8_bytes';

export interface Tokenizer {
  readonly encoding: TokenEncoding;
  /**
   * Tokens in `text` as the provider counts a message's text (special-token spellings are plain text), or
   * Infinity when a piece of it is longer than MAX_PIECE_CHARS: too costly to count, so the caller keeps bytes.
   */
  count(text: string): number;
}

/**
 * Requests whose byte bound is above this keep the byte bound, so one huge prompt cannot hold up the hot
 * path. Measured (bench/tokenizer.ts, Node 20, 2 busy cores): an 8 KB prompt of ordinary text costs 1-2 ms
 * to estimate, but text in no language (random letter words) ~20-28 ms at 8 KiB, and twice that at 16 KiB.
 */
export const MAX_TOKENIZED_BYTES = 8 * 1024;

/**
 * Text with a pre-tokenized piece (a run of letters, of spaces, of symbols) longer than this keeps the byte
 * bound. BPE merging is quadratic in a piece's length: one 8 KiB piece takes ~70-100 ms, where a 256-character
 * piece takes well under 1 ms. Ordinary text has no piece near this long (a German compound, an 80-dash rule);
 * checking costs one more pass of the encoding's split expression, about as long as the count itself.
 */
export const MAX_PIECE_CHARS = 256;

// gpt-tokenizer memoizes merged pieces (100,000 by default, up to hundreds of MiB of unlucky pieces). 1,024
// entries keep the default's speed on ordinary text (common words hit) in a few MiB at most.
const MERGE_CACHE_ENTRIES = 1024;

// Names as OpenAI gives them; a family covers its dated snapshots and variants (gpt-4o-mini-2024-07-18, o3-pro).
const O200K_MODEL = /^(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5(?:\.\d+)?|o1|o3|o4)(?:-|$)/;
const CL100K_MODEL = /^(?:gpt-4|gpt-3\.5-turbo|gpt-35-turbo|text-embedding-3|text-embedding-ada-002)(?:-|$)/;

// Routers and hosts that serve OpenAI's own models under OpenAI's names. Any other prefix may be a
// different model that happens to share a name, so it keeps the byte bound.
const OPENAI_MODEL_PREFIXES = ['openrouter/openai/', 'azure/openai/', 'openai/', 'azure/'];

// A fine-tune (ft:gpt-4o-mini-2024-07-18:org:name:id) uses its base model's tokenizer.
const FINE_TUNE = /^ft:([^:]+):/;

/** The encoding OpenAI uses for `model`, or null when its tokens cannot be counted exactly here. */
export function encodingForModel(model: string | null | undefined): TokenEncoding | null {
  if (model === null || model === undefined) return null;
  const prefix = OPENAI_MODEL_PREFIXES.find((p) => model.startsWith(p));
  const unprefixed = prefix === undefined ? model : model.slice(prefix.length);
  const base = FINE_TUNE.exec(unprefixed)?.[1] ?? unprefixed;
  if (O200K_MODEL.test(base)) return 'o200k_base';
  if (CL100K_MODEL.test(base)) return 'cl100k_base';
  return null;
}

// Special tokens like <|endoftext|> in user text are plain text to the API: count them as such, never throw.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

interface EncodingModule {
  countTokens(text: string, options: typeof PLAIN_TEXT): number;
  setMergeCacheSize(size: number): void;
}

// The very expressions the encodings split text with before merging, so the pieces checked are the pieces merged.
const SPLIT_PATTERNS: Record<TokenEncoding, RegExp> = {
  o200k_base: O200K_TOKEN_SPLIT_REGEX,
  cl100k_base: CL100K_TOKEN_SPLIT_REGEX,
};

// Literal specifiers, so bundlers for edge runtimes see both modules; each is imported on first use only
// (o200k_base: ~2.4 MB of ranks, 0.2-0.7 s and ~20 MiB of heap to load, measured).
const IMPORTS: Record<TokenEncoding, () => Promise<EncodingModule>> = {
  o200k_base: () => import('gpt-tokenizer/encoding/o200k_base'),
  cl100k_base: () => import('gpt-tokenizer/encoding/cl100k_base'),
};

function hasLongPiece(text: string, split: RegExp): boolean {
  for (const [piece] of text.matchAll(split)) {
    if (piece.length > MAX_PIECE_CHARS) return true;
  }
  return false;
}

// One load per encoding per process. The ranks are constants, so nothing here can go stale or disagree with
// the database. A failed import (a bundle that left the ranks out) counts bytes: still a safe upper bound,
// and the estimate's input_counter shows it.
const loaded: Partial<Record<TokenEncoding, Promise<Tokenizer | null>>> = {};

function load(encoding: TokenEncoding): Promise<Tokenizer | null> {
  return (loaded[encoding] ??= IMPORTS[encoding]().then(
    (module): Tokenizer => {
      module.setMergeCacheSize(MERGE_CACHE_ENTRIES);
      const split = SPLIT_PATTERNS[encoding];
      return {
        encoding,
        count: (text) => (hasLongPiece(text, split) ? Number.POSITIVE_INFINITY : module.countTokens(text, PLAIN_TEXT)),
      };
    },
    () => null,
  ));
}

/** The exact tokenizer for `model`, loaded once per process, or null when the byte bound must be used. */
export function loadTokenizer(model: string | null | undefined): Promise<Tokenizer | null> {
  const encoding = encodingForModel(model);
  return encoding === null ? Promise.resolve(null) : load(encoding);
}
