/**
 * Worst-case usage of an LLM call, read from its request body before the call is made.
 *
 * The numbers here feed a reservation: overestimating only holds back budget until the
 * call settles, underestimating lets a call spend money nobody reserved. So every rule
 * below leans towards counting more, never less.
 */

import { MAX_TOKENIZED_BYTES, type InputCounter, type Tokenizer } from './tokenizer.ts';

/** What a request body tells about the worst-case usage of the call it describes. */
export interface RequestEstimate {
  /** Upper bound on input tokens from the text: every text the model reads, counted by `input_counter`, plus framing. */
  input_tokens: number;
  /** How the texts were counted: the model's own encoding (exact), or one token per UTF-8 byte (an upper bound). */
  input_counter: InputCounter;
  /** Content parts whose token count cannot be known from the body (images, audio, files): the SQL side counts each as the model's whole context. */
  unsized_parts: number;
  /** The largest of max_tokens, max_completion_tokens, max_output_tokens when any is given (a positive integer), else null. */
  max_output_tokens: number | null;
  /** Completions requested: the larger of `n` and `best_of` when given (positive integers), else 1; times the
   * number of prompts when a completions request sends several. */
  n: number;
  /** Requested image size "WIDTHxHEIGHT" for image generation (`size` field, when it matches /^\d+x\d+$/), else null. */
  size: string | null;
  /** Characters of a text-to-speech `input` (a string), counted as Unicode code points; 0 for other requests. */
  characters: number;
}

/** Input tokens and unsized parts found in one piece of the body; pieces are summed. */
interface InputCount {
  tokens: number;
  unsized_parts: number;
}

// Chat formats wrap each message in role markers and separators; OpenAI's own
// cookbook counts 3 per message and 3 for priming the reply. 4 leaves headroom for
// tokenizers with longer markers.
const TOKENS_PER_MESSAGE = 4;
const TOKENS_FOR_REPLY_PRIMING = 3;

// Parts whose tokens depend on pixels, samples or pages the body does not describe
// in tokens. Their cost is left to the SQL side (counted as a whole context each).
const UNSIZED_PART_TYPES: ReadonlySet<string> = new Set([
  'image_url',
  'input_image',
  'image',
  'input_audio',
  'audio',
  'file',
  'input_file',
  'document',
]);

// Top-level fields the model reads as serialized JSON (tool schemas, output schemas).
const JSON_COUNTED_FIELDS = ['tools', 'functions', 'tool_choice', 'response_format'] as const;

// OpenAI renders tool definitions into a system-message block whose wrapper costs 12 tokens once (its
// cookbook's func_end). Exact counting needs it: one tiny definition, {"type":"function","function":{"name":"f"}},
// is 13 o200k tokens of JSON where the cookbook counts 21. The byte bound (45) never did, but framing is one
// rule for both counters.
const TOKENS_FOR_TOOL_DEFINITIONS = 12;
const TOOL_DEFINITION_FIELDS = ['tools', 'functions'] as const;

const OUTPUT_LIMIT_FIELDS = ['max_tokens', 'max_completion_tokens', 'max_output_tokens'] as const;

const IMAGE_SIZE_PATTERN = /^\d+x\d+$/;

const NOTHING: InputCount = { tokens: 0, unsized_parts: 0 };

/** Tokens in one text the model reads: the model's tokenizer, or the byte bound. */
type CountText = (text: string) => number;

const utf8 = new TextEncoder();

/**
 * `tokenizer` is the model's own (see loadTokenizer). Without one, or when the request is too large or
 * too odd to tokenize on the hot path, every text counts one token per UTF-8 byte.
 */
export function estimateRequest(request: Record<string, unknown>, tokenizer: Tokenizer | null = null): RequestEstimate {
  // The byte bound is cheap and also sizes the tokenizer's work: it is never less than the text bytes.
  const byteBound = countInputTokens(request, utf8Bytes);
  if (tokenizer !== null && byteBound.tokens <= MAX_TOKENIZED_BYTES) {
    const exact = countInputTokens(request, tokenizer.count);
    // Infinity when some text was too costly to tokenize (see Tokenizer.count).
    if (Number.isFinite(exact.tokens)) return estimateWith(request, exact, tokenizer.encoding);
  }
  return estimateWith(request, byteBound, 'utf8_bytes');
}

function estimateWith(request: Record<string, unknown>, input: InputCount, counter: InputCounter): RequestEstimate {
  return {
    input_tokens: input.tokens,
    input_counter: counter,
    unsized_parts: input.unsized_parts,
    max_output_tokens: largestPositiveInteger(OUTPUT_LIMIT_FIELDS.map((field) => request[field])),
    n: (largestPositiveInteger([request.n, request.best_of]) ?? 1) * promptCount(request.prompt),
    size: imageSize(request.size),
    characters: typeof request.input === 'string' ? [...request.input].length : 0,
  };
}

function countInputTokens(request: Record<string, unknown>, count: CountText): InputCount {
  const counts: InputCount[] = [
    countMessages(request.messages, count),
    countContent(request.system, count),
    { tokens: countInstructions(request.instructions, count), unsized_parts: 0 },
    { tokens: countJsonFields(request, count) + toolDefinitionsFraming(request), unsized_parts: 0 },
    { tokens: countPrompt(request.prompt, count), unsized_parts: 0 },
    countInput(request.input, count),
  ];
  return counts.reduce(addCounts, NOTHING);
}

// A completions request with several prompts gets n completions for each of them.
function promptCount(prompt: unknown): number {
  if (!Array.isArray(prompt) || prompt.length === 0) return 1;
  return prompt.every((p) => typeof p === 'string' || Array.isArray(p)) ? prompt.length : 1;
}

function addCounts(a: InputCount, b: InputCount): InputCount {
  return { tokens: a.tokens + b.tokens, unsized_parts: a.unsized_parts + b.unsized_parts };
}

// One token per UTF-8 byte is the most any byte-level BPE or byte-fallback tokenizer emits.
function utf8Bytes(text: string): number {
  return utf8.encode(text).length;
}

function countJson(value: unknown, count: CountText): number {
  try {
    // bigint has no JSON form; its decimal digits are what a model would read.
    const json = JSON.stringify(value, (_key, item: unknown) =>
      typeof item === 'bigint' ? item.toString() : item,
    );
    // undefined and functions have no JSON form and nothing a model reads.
    return json === undefined ? 0 : count(json);
  } catch {
    // Only a cyclic value gets here, and no parsed request body can contain one.
    return 0;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isPositiveSafeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function largestPositiveInteger(values: readonly unknown[]): number | null {
  const valid = values.filter(isPositiveSafeInteger);
  return valid.length === 0 ? null : Math.max(...valid);
}

function imageSize(value: unknown): string | null {
  return typeof value === 'string' && IMAGE_SIZE_PATTERN.test(value) ? value : null;
}

/** A content part: text is counted, media is unsized, anything else counts as its JSON. */
function countPart(part: unknown, count: CountText): InputCount {
  if (isRecord(part)) {
    if (part.type === 'text' && typeof part.text === 'string') {
      return { tokens: count(part.text), unsized_parts: 0 };
    }
    if (typeof part.type === 'string' && UNSIZED_PART_TYPES.has(part.type)) {
      return { tokens: 0, unsized_parts: 1 };
    }
  }
  // Tool results, tool uses, thinking blocks and unknown parts: the model reads
  // some rendering of them, which is never longer than their JSON.
  return { tokens: countJson(part, count), unsized_parts: 0 };
}

/** A message's `content`, or an Anthropic `system`: a plain string or an array of parts. */
function countContent(content: unknown, count: CountText): InputCount {
  if (typeof content === 'string') return { tokens: count(content), unsized_parts: 0 };
  if (Array.isArray(content)) return content.map((part) => countPart(part, count)).reduce(addCounts, NOTHING);
  return NOTHING;
}

function countMessage(message: Record<string, unknown>, count: CountText): InputCount {
  const countString = (value: unknown): number => (typeof value === 'string' ? count(value) : 0);
  const fieldTokens =
    TOKENS_PER_MESSAGE +
    countString(message.name) +
    countString(message.tool_call_id) +
    countJson(message.tool_calls, count) +
    countJson(message.function_call, count);
  return addCounts(countContent(message.content, count), { tokens: fieldTokens, unsized_parts: 0 });
}

/** Chat `messages`. Entries that are not objects carry nothing a model could read as a message. */
function countMessages(messages: unknown, count: CountText): InputCount {
  if (!Array.isArray(messages) || messages.length === 0) return NOTHING;
  const counted = messages
    .filter(isRecord)
    .map((message) => countMessage(message, count))
    .reduce(addCounts, NOTHING);
  return addCounts(counted, { tokens: TOKENS_FOR_REPLY_PRIMING, unsized_parts: 0 });
}

// The Responses API's system prompt. The model reads it like any other text, so
// leaving it out would let a long instruction slip past the reservation.
function countInstructions(instructions: unknown, count: CountText): number {
  return typeof instructions === 'string' ? count(instructions) : 0;
}

function countJsonFields(request: Record<string, unknown>, count: CountText): number {
  return JSON_COUNTED_FIELDS.reduce((sum, field) => sum + countJson(request[field], count), 0);
}

function toolDefinitionsFraming(request: Record<string, unknown>): number {
  const defined = TOOL_DEFINITION_FIELDS.some((field) => {
    const definitions = request[field];
    return Array.isArray(definitions) && definitions.length > 0;
  });
  return defined ? TOKENS_FOR_TOOL_DEFINITIONS : 0;
}

/**
 * One element of a `prompt` or `input` array: a string is text, a number is one
 * token id, an array is a list of token ids.
 */
function countPromptElement(element: unknown, count: CountText): number {
  if (typeof element === 'string') return count(element);
  if (typeof element === 'number') return 1;
  if (Array.isArray(element)) return element.length;
  return 0;
}

/** Completion or image-generation `prompt`: text, texts, token ids, or lists of token ids. */
function countPrompt(prompt: unknown, count: CountText): number {
  if (typeof prompt === 'string') return count(prompt);
  if (Array.isArray(prompt)) {
    return prompt.reduce((sum: number, element: unknown) => sum + countPromptElement(element, count), 0);
  }
  return 0;
}

/**
 * A Responses API input item that is not a message (function_call_output, function_call,
 * reasoning, ...). Its text sits in fields a message does not have (`output`, `arguments`),
 * so counting it as a message would drop that text; its JSON bounds it instead.
 */
function isNonMessageItem(item: Record<string, unknown>): boolean {
  return typeof item.type === 'string' && item.type !== 'message';
}

/**
 * Embeddings `input` (text, texts, token ids) or Responses API `input`, which may
 * also be a list of message-like items. Strings and token ids in a list count as in
 * `prompt`; objects count as messages, with the reply priming once when any exist.
 */
function countInput(input: unknown, count: CountText): InputCount {
  if (!Array.isArray(input)) return { tokens: countPrompt(input, count), unsized_parts: 0 };
  const items = input.filter(isRecord);
  const messages = items.filter((item) => !isNonMessageItem(item));
  const otherItemsTokens = items
    .filter(isNonMessageItem)
    .reduce((sum, item) => sum + TOKENS_PER_MESSAGE + countJson(item, count), 0);
  const plainTokens = countPrompt(
    input.filter((element) => !isRecord(element)),
    count,
  );
  const primingTokens = items.length > 0 ? TOKENS_FOR_REPLY_PRIMING : 0;
  const messageCount = messages.map((message) => countMessage(message, count)).reduce(addCounts, NOTHING);
  return addCounts(messageCount, { tokens: plainTokens + otherItemsTokens + primingTokens, unsized_parts: 0 });
}
