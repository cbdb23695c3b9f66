import { decimalFromNumber, parseDecimal } from './decimal.ts';

/**
 * A provider's `usage` object reduced to the token counts pricing needs.
 *
 * Providers disagree on whether their input count includes cached tokens, so each
 * shape is read by its own rule; reading one shape by another's rule would bill
 * cached tokens twice or not at all.
 *
 * Which shape a usage object is gets decided by the keys it carries (a key holding
 * null or undefined counts as absent, as the providers' own SDK types allow):
 *   - a `usageMetadata` key (a Gemini response or wrapper: only that key is read)
 *     or any of promptTokenCount / candidatesTokenCount / thoughtsTokenCount /
 *     cachedContentTokenCount                                           → Gemini
 *   - any of prompt_tokens / completion_tokens / prompt_tokens_details /
 *     completion_tokens_details                                         → OpenAI Chat Completions
 *   - cache_read_input_tokens or cache_creation_input_tokens            → Anthropic Messages
 *   - input_tokens_details or output_tokens_details                     → OpenAI Responses
 *   - only input_tokens / output_tokens   → Responses or Anthropic; without any cache
 *     field both read the same, so it is read as Anthropic (nothing to subtract)
 *   - seconds or characters, with no token counts → audio (OpenAI transcription's
 *     `{"type": "duration", "seconds": 12.5}`, or a caller's own count of seconds or
 *     characters for speech)
 * Keys of two of these families together are rejected (input_tokens / output_tokens
 * next to Gemini or Chat Completions keys too): no single rule reads such an object
 * correctly, and guessing would misprice the call.
 */

/** A provider's usage object reduced to what pricing needs. Token counts are non-negative integers. */
export interface NormalizedUsage {
  input_tokens: number;          // prompt tokens billed at the plain input rate (NOT including cache reads or cache writes)
  cache_read_tokens: number;     // prompt tokens read from the provider's cache (billed at the cache-read rate)
  cache_creation_tokens: number; // prompt tokens written to the cache (billed at the cache-write rate)
  output_tokens: number;         // all output tokens, reasoning included
  reasoning_tokens: number;      // the part of output_tokens that was reasoning (0 when not reported)
  seconds?: string;              // audio length, a decimal string (transcription and speech billed by the second)
  characters?: number;           // characters read aloud (speech billed by the character)
}

export type UsageResult = { ok: true; usage: NormalizedUsage } | { ok: false; path: string; message: string };

type UsageShape = 'openai_chat' | 'openai_responses' | 'anthropic' | 'gemini' | 'audio';

// Keys only one shape uses. A key holding null or undefined counts as absent.
const SHAPE_KEYS: Readonly<Record<UsageShape, readonly string[]>> = {
  gemini: ['promptTokenCount', 'candidatesTokenCount', 'thoughtsTokenCount', 'cachedContentTokenCount'],
  openai_chat: ['prompt_tokens', 'completion_tokens', 'prompt_tokens_details', 'completion_tokens_details'],
  openai_responses: ['input_tokens_details', 'output_tokens_details'],
  anthropic: ['cache_read_input_tokens', 'cache_creation_input_tokens'],
  audio: ['seconds', 'characters'],
};

// input_tokens / output_tokens belong to both Responses and Anthropic, so they do not
// decide between them; alone they mark a usage object as one of the two.
const SHARED_INPUT_OUTPUT_KEYS = ['input_tokens', 'output_tokens'] as const;

const ACCEPTED_SHAPES_MESSAGE =
  'usage has none of the recognised token counts; accepted are ' +
  'prompt_tokens/completion_tokens (OpenAI Chat Completions and Completions), ' +
  'input_tokens/output_tokens with input_tokens_details/output_tokens_details (OpenAI Responses), ' +
  'input_tokens/output_tokens with cache_read_input_tokens/cache_creation_input_tokens (Anthropic Messages), ' +
  'promptTokenCount/candidatesTokenCount/thoughtsTokenCount/cachedContentTokenCount ' +
  '(Gemini usageMetadata, alone or under a usageMetadata key), ' +
  'and seconds or characters (audio transcription and speech)';

// Thrown inside this module only, so that a failed read stops at its first bad field;
// normalizeUsage turns it into a result. No parameter property: type stripping cannot erase one.
class UsageError extends Error {
  readonly path: string;
  constructor(path: string, message: string) {
    super(message);
    this.path = path;
  }
}

export function normalizeUsage(usage: Record<string, unknown>): UsageResult {
  try {
    const normalized = readUsage(usage);
    if (!Number.isSafeInteger(totalTokens(normalized))) {
      return { ok: false, path: '', message: 'token counts add up to more than can be counted exactly' };
    }
    return { ok: true, usage: normalized };
  } catch (error) {
    if (error instanceof UsageError) return { ok: false, path: error.path, message: error.message };
    throw error;
  }
}

/** Every token of a call: all input, cached or not, plus all output. */
export function totalTokens(u: NormalizedUsage): number {
  return u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens + u.output_tokens;
}

/** Input tokens that rate limits count: cache reads are not counted (as Anthropic meters ITPM), cache writes are. */
export function rateLimitedInputTokens(u: NormalizedUsage): number {
  return u.input_tokens + u.cache_creation_tokens;
}

function readUsage(usage: Record<string, unknown>): NormalizedUsage {
  if (isPresent(usage.usageMetadata)) {
    const metadata = usage.usageMetadata;
    if (!isRecord(metadata)) throw new UsageError('usageMetadata', 'usageMetadata must be an object');
    return readGemini(metadata, 'usageMetadata.');
  }
  switch (detectShape(usage)) {
    case 'openai_chat':
      return readOpenAI(usage, OPENAI_FIELDS.chat);
    case 'openai_responses':
      return readOpenAI(usage, OPENAI_FIELDS.responses);
    case 'anthropic':
      return readAnthropic(usage);
    case 'gemini':
      return readGemini(usage, '');
    case 'audio':
      return readAudio(usage);
  }
}

function detectShape(usage: Record<string, unknown>): UsageShape {
  const firstPresent = (keys: readonly string[]): string | undefined => keys.find((key) => isPresent(usage[key]));
  const marked = (Object.keys(SHAPE_KEYS) as UsageShape[]).flatMap((shape) => {
    const key = firstPresent(SHAPE_KEYS[shape]);
    return key === undefined ? [] : [{ shape, key }];
  });
  const sharedKey = firstPresent(SHARED_INPUT_OUTPUT_KEYS);
  const sharedKeyClashes =
    sharedKey !== undefined && marked.some(({ shape }) => shape === 'gemini' || shape === 'openai_chat' || shape === 'audio');
  if (marked.length > 1 || sharedKeyClashes) {
    const keys = [...marked.map(({ key }) => key), ...(sharedKey === undefined ? [] : [sharedKey])];
    throw new UsageError('', `usage mixes fields of different providers' formats (${keys.join(', ')}); it must follow one format`);
  }
  const [only] = marked;
  if (only !== undefined) return only.shape;
  if (sharedKey !== undefined) return 'anthropic';
  throw new UsageError('', ACCEPTED_SHAPES_MESSAGE);
}

// The two OpenAI shapes differ only in names: their input count includes the cached tokens, their output count
// the reasoning tokens.
const OPENAI_FIELDS = {
  chat: { input: 'prompt_tokens', output: 'completion_tokens', inputDetails: 'prompt_tokens_details', outputDetails: 'completion_tokens_details' },
  responses: { input: 'input_tokens', output: 'output_tokens', inputDetails: 'input_tokens_details', outputDetails: 'output_tokens_details' },
} as const;

function readOpenAI(usage: Record<string, unknown>, names: (typeof OPENAI_FIELDS)[keyof typeof OPENAI_FIELDS]): NormalizedUsage {
  const inputTokens = readCount(usage, names.input, '');
  const outputTokens = readCount(usage, names.output, '');
  const inputDetails = readDetails(usage, names.inputDetails, '');
  const outputDetails = readDetails(usage, names.outputDetails, '');
  const cachedTokens = readCount(inputDetails, 'cached_tokens', `${names.inputDetails}.`);
  const reasoningTokens = readCount(outputDetails, 'reasoning_tokens', `${names.outputDetails}.`);
  requireAtMost(cachedTokens, `${names.inputDetails}.cached_tokens`, inputTokens, names.input);
  requireAtMost(reasoningTokens, `${names.outputDetails}.reasoning_tokens`, outputTokens, names.output);
  return {
    input_tokens: inputTokens - cachedTokens,
    cache_read_tokens: cachedTokens,
    cache_creation_tokens: 0,
    output_tokens: outputTokens,
    reasoning_tokens: reasoningTokens,
  };
}

// Anthropic Messages: input_tokens excludes both cache counts, so all three add up.
// Anthropic does not report thinking tokens apart from output_tokens.
function readAnthropic(usage: Record<string, unknown>): NormalizedUsage {
  return {
    input_tokens: readCount(usage, 'input_tokens', ''),
    cache_read_tokens: readCount(usage, 'cache_read_input_tokens', ''),
    cache_creation_tokens: readCount(usage, 'cache_creation_input_tokens', ''),
    output_tokens: readCount(usage, 'output_tokens', ''),
    reasoning_tokens: 0,
  };
}

// Gemini: promptTokenCount includes cachedContentTokenCount; thoughts are billed as
// output but reported apart from candidatesTokenCount.
function readGemini(metadata: Record<string, unknown>, pathPrefix: string): NormalizedUsage {
  const promptTokens = readCount(metadata, 'promptTokenCount', pathPrefix);
  const candidatesTokens = readCount(metadata, 'candidatesTokenCount', pathPrefix);
  const thoughtsTokens = readCount(metadata, 'thoughtsTokenCount', pathPrefix);
  const cachedTokens = readCount(metadata, 'cachedContentTokenCount', pathPrefix);
  requireAtMost(cachedTokens, `${pathPrefix}cachedContentTokenCount`, promptTokens, `${pathPrefix}promptTokenCount`);
  return {
    input_tokens: promptTokens - cachedTokens,
    cache_read_tokens: cachedTokens,
    cache_creation_tokens: 0,
    output_tokens: candidatesTokens + thoughtsTokens,
    reasoning_tokens: thoughtsTokens,
  };
}

// Audio billed by length: no tokens, so token limits count none.
function readAudio(usage: Record<string, unknown>): NormalizedUsage {
  const audio: NormalizedUsage = { input_tokens: 0, cache_read_tokens: 0, cache_creation_tokens: 0, output_tokens: 0, reasoning_tokens: 0 };
  if (isPresent(usage.seconds)) audio.seconds = readSeconds(usage.seconds);
  if (isPresent(usage.characters)) audio.characters = readCount(usage, 'characters', '');
  return audio;
}

/** Seconds of audio: a non-negative decimal (a JSON number or a decimal string), kept exact as text. */
function readSeconds(value: unknown): string {
  const parsed = typeof value === 'number' ? decimalFromNumber(value) : typeof value === 'string' ? parseDecimal(value) : null;
  if (!parsed?.ok || parsed.value.startsWith('-')) {
    throw new UsageError('seconds', `seconds must be a non-negative number, got ${describe(value)}`);
  }
  return parsed.value;
}

function isPresent(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A token count; absent (or null) means the provider did not report it, which is 0. */
function readCount(container: Record<string, unknown>, key: string, pathPrefix: string): number {
  const value = container[key];
  if (!isPresent(value)) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new UsageError(`${pathPrefix}${key}`, `${pathPrefix}${key} must be a non-negative whole number, got ${describe(value)}`);
  }
  return value;
}

/** A `*_details` object; absent (or null) reads as empty, so the counts inside are 0. */
function readDetails(container: Record<string, unknown>, key: string, pathPrefix: string): Record<string, unknown> {
  const value = container[key];
  if (!isPresent(value)) return {};
  if (!isRecord(value)) throw new UsageError(`${pathPrefix}${key}`, `${pathPrefix}${key} must be an object, got ${describe(value)}`);
  return value;
}

function requireAtMost(part: number, partPath: string, whole: number, wholePath: string): void {
  if (part > whole) {
    throw new UsageError(partPath, `${partPath} (${part}) is more than ${wholePath} (${whole}), which includes it`);
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return 'an array';
  return `a value of type ${typeof value}`;
}
