/**
 * Worst-case usage of an LLM call, read from its request body before the call is made.
 *
 * The numbers here feed a reservation: overestimating only holds back budget until the
 * call settles, underestimating lets a call spend money nobody reserved. So every rule
 * below leans towards counting more, never less.
 */

/** What a request body tells about the worst-case usage of the call it describes (before any model is known). */
export interface RequestEstimate {
  /** Upper bound on input tokens from the text: the UTF-8 byte count of every text the model reads, plus framing. */
  input_tokens: number;
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

const OUTPUT_LIMIT_FIELDS = ['max_tokens', 'max_completion_tokens', 'max_output_tokens'] as const;

const IMAGE_SIZE_PATTERN = /^\d+x\d+$/;

const NOTHING: InputCount = { tokens: 0, unsized_parts: 0 };

const utf8 = new TextEncoder();

export function estimateRequest(request: Record<string, unknown>): RequestEstimate {
  const counts: InputCount[] = [
    countMessages(request.messages),
    countSystem(request.system),
    { tokens: countInstructions(request.instructions), unsized_parts: 0 },
    { tokens: countJsonFields(request), unsized_parts: 0 },
    { tokens: countPrompt(request.prompt), unsized_parts: 0 },
    countInput(request.input),
  ];
  const total = counts.reduce(addCounts, NOTHING);
  return {
    input_tokens: total.tokens,
    unsized_parts: total.unsized_parts,
    max_output_tokens: largestPositiveInteger(OUTPUT_LIMIT_FIELDS.map((field) => request[field])),
    n: (largestPositiveInteger([request.n, request.best_of]) ?? 1) * promptCount(request.prompt),
    size: imageSize(request.size),
    characters: typeof request.input === 'string' ? [...request.input].length : 0,
  };
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

function jsonBytes(value: unknown): number {
  try {
    // bigint has no JSON form; its decimal digits are what a model would read.
    const json = JSON.stringify(value, (_key, item: unknown) =>
      typeof item === 'bigint' ? item.toString() : item,
    );
    // undefined and functions have no JSON form and nothing a model reads.
    return json === undefined ? 0 : utf8Bytes(json);
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

/** A content part: text is sized by its bytes, media is unsized, anything else by its JSON. */
function countPart(part: unknown): InputCount {
  if (isRecord(part)) {
    if (part.type === 'text' && typeof part.text === 'string') {
      return { tokens: utf8Bytes(part.text), unsized_parts: 0 };
    }
    if (typeof part.type === 'string' && UNSIZED_PART_TYPES.has(part.type)) {
      return { tokens: 0, unsized_parts: 1 };
    }
  }
  // Tool results, tool uses, thinking blocks and unknown parts: the model reads
  // some rendering of them, which is never longer than their JSON.
  return { tokens: jsonBytes(part), unsized_parts: 0 };
}

/** A message's `content`, or an Anthropic `system`: a plain string or an array of parts. */
function countContent(content: unknown): InputCount {
  if (typeof content === 'string') return { tokens: utf8Bytes(content), unsized_parts: 0 };
  if (Array.isArray(content)) return content.map(countPart).reduce(addCounts, NOTHING);
  return NOTHING;
}

function countMessage(message: Record<string, unknown>): InputCount {
  const stringBytes = (value: unknown): number => (typeof value === 'string' ? utf8Bytes(value) : 0);
  const fieldTokens =
    TOKENS_PER_MESSAGE +
    stringBytes(message.name) +
    stringBytes(message.tool_call_id) +
    jsonBytes(message.tool_calls) +
    jsonBytes(message.function_call);
  return addCounts(countContent(message.content), { tokens: fieldTokens, unsized_parts: 0 });
}

/** Chat `messages`. Entries that are not objects carry nothing a model could read as a message. */
function countMessages(messages: unknown): InputCount {
  if (!Array.isArray(messages) || messages.length === 0) return NOTHING;
  const counted = messages.filter(isRecord).map(countMessage).reduce(addCounts, NOTHING);
  return addCounts(counted, { tokens: TOKENS_FOR_REPLY_PRIMING, unsized_parts: 0 });
}

function countSystem(system: unknown): InputCount {
  return countContent(system);
}

// The Responses API's system prompt. The model reads it like any other text, so
// leaving it out would let a long instruction slip past the reservation.
function countInstructions(instructions: unknown): number {
  return typeof instructions === 'string' ? utf8Bytes(instructions) : 0;
}

function countJsonFields(request: Record<string, unknown>): number {
  return JSON_COUNTED_FIELDS.reduce((sum, field) => sum + jsonBytes(request[field]), 0);
}

/**
 * One element of a `prompt` or `input` array: a string is text, a number is one
 * token id, an array is a list of token ids.
 */
function countPromptElement(element: unknown): number {
  if (typeof element === 'string') return utf8Bytes(element);
  if (typeof element === 'number') return 1;
  if (Array.isArray(element)) return element.length;
  return 0;
}

/** Completion or image-generation `prompt`: text, texts, token ids, or lists of token ids. */
function countPrompt(prompt: unknown): number {
  if (typeof prompt === 'string') return utf8Bytes(prompt);
  if (Array.isArray(prompt)) return prompt.reduce((sum: number, element: unknown) => sum + countPromptElement(element), 0);
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
function countInput(input: unknown): InputCount {
  if (!Array.isArray(input)) return { tokens: countPrompt(input), unsized_parts: 0 };
  const items = input.filter(isRecord);
  const messages = items.filter((item) => !isNonMessageItem(item));
  const otherItemsTokens = items
    .filter(isNonMessageItem)
    .reduce((sum, item) => sum + TOKENS_PER_MESSAGE + jsonBytes(item), 0);
  const plainTokens = countPrompt(input.filter((element) => !isRecord(element)));
  const primingTokens = items.length > 0 ? TOKENS_FOR_REPLY_PRIMING : 0;
  const messageCount = messages.map(countMessage).reduce(addCounts, NOTHING);
  return addCounts(messageCount, { tokens: plainTokens + otherItemsTokens + primingTokens, unsized_parts: 0 });
}
