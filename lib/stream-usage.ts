/**
 * What a streamed model answer tells about its cost, read chunk by chunk: whether any output came yet, the input
 * usage once known, and the final usage. Knows the chunks of the official SDKs' streams (which are the wire
 * events, parsed):
 *   - OpenAI Chat Completions: `usage` on the last chunk when the request set `stream_options: {include_usage: true}`
 *   - OpenAI Responses: `response.completed` (or `.incomplete`/`.failed`) carries `response.usage`
 *   - Anthropic Messages: `message_start` carries the input usage, each `message_delta` the cumulative output
 *   - Gemini: `usageMetadata` on the chunks, the last one final
 */

type Json = Record<string, unknown>;

export interface StreamUsage {
  observe(chunk: unknown): void;
  /** Whether any chunk carried output (text, a tool call, reasoning). */
  sawOutput(): boolean;
  /** The usage object to settle with, once the stream reported its final one. */
  finalUsage(): Json | null;
  /** The input part alone, when the stream reported it before the end (Anthropic's message_start). */
  inputUsage(): Json | null;
}

export function createStreamUsage(): StreamUsage {
  let output = false;
  let input: Json | null = null;
  let final: Json | null = null;

  const observe = (chunk: unknown) => {
    if (!isRecord(chunk)) return;
    const type = typeof chunk.type === 'string' ? chunk.type : '';
    if (type === 'message_start' && isRecord(chunk.message) && isRecord(chunk.message.usage)) {
      input = { ...chunk.message.usage, output_tokens: 0 };
      return;
    }
    if (type === 'message_delta') {
      // output_tokens is cumulative; newer API versions also repeat the input counts here.
      if (isRecord(chunk.usage)) final = { ...(input ?? {}), ...withoutNulls(chunk.usage) };
      return;
    }
    if (type === 'content_block_start' || type === 'content_block_delta') {
      output = true;
      return;
    }
    if (type.startsWith('response.')) {
      if (isRecord(chunk.response) && isRecord(chunk.response.usage)) final = chunk.response.usage;
      if (type.includes('delta') || type === 'response.output_item.added') output = true;
      return;
    }
    if (Array.isArray(chunk.choices) && chunk.choices.some(choiceHasOutput)) output = true;
    if (isRecord(chunk.usage)) final = chunk.usage;
    if (isRecord(chunk.usageMetadata)) final = { usageMetadata: chunk.usageMetadata };
    if (Array.isArray(chunk.candidates) && chunk.candidates.length > 0) output = true;
  };

  return { observe, sawOutput: () => output, finalUsage: () => final, inputUsage: () => input };
}

// The first chat chunk only announces the role; content, a refusal, a tool call or reasoning is output.
function choiceHasOutput(choice: unknown): boolean {
  if (!isRecord(choice)) return false;
  if (typeof choice.text === 'string' && choice.text !== '') return true;
  if (!isRecord(choice.delta)) return false;
  return Object.entries(choice.delta).some(([key, value]) =>
    key !== 'role' && value !== null && value !== undefined && value !== '' && !(Array.isArray(value) && value.length === 0));
}

function withoutNulls(record: Json): Json {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== null && value !== undefined));
}

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
