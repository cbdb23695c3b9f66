/**
 * A stand-in for OpenAI's and Anthropic's APIs on a local port: `POST /v1/chat/completions` and `POST /v1/messages`,
 * as JSON or as server-sent events when the request says `stream: true`, with the usage each provider reports.
 * The official SDKs talk to it through their `baseURL`. No network.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The reply every call gets, one streamed chunk (and one output token) per piece. */
export const replyPieces = ['Hello', ' from', ' the', ' fake', ' model', '.'];
export const inputTokens = 12;
export const outputTokens = replyPieces.length;

export interface StreamPause {
  /** Resolves when a stream has sent its first event (the role chunk or message_start) and waits. */
  reached: Promise<void>;
  resume(): void;
}

export interface FakeModelServer {
  url: string;
  /** The next stream stops after its first event until `resume()`. */
  pauseNextStream(): StreamPause;
  /** Request bodies received, in order. */
  requests: Array<{ path: string; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startFakeModelServer(): Promise<FakeModelServer> {
  const requests: FakeModelServer['requests'] = [];
  let pause: { reached: () => void; resumed: Promise<void> } | null = null;

  const server = createServer(async (req, res) => {
    const body = await readJson(req);
    requests.push({ path: req.url ?? '', body });
    const gate = body.stream === true ? pause : null;
    if (gate) pause = null;
    const waitAfterFirst = async () => {
      if (!gate) return;
      gate.reached();
      await gate.resumed;
    };
    if (req.method === 'POST' && req.url === '/v1/chat/completions') return openAIChat(body, res, waitAfterFirst);
    if (req.method === 'POST' && req.url === '/v1/messages') return anthropicMessages(body, res, waitAfterFirst);
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `no route ${req.url}` } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    pauseNextStream() {
      let reached!: () => void;
      let resume!: () => void;
      const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
      const resumed = new Promise<void>((resolve) => (resume = resolve));
      pause = { reached, resumed };
      return { reached: reachedPromise, resume };
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

async function openAIChat(body: Record<string, unknown>, res: ServerResponse, waitAfterFirst: () => Promise<void>) {
  const id = 'chatcmpl-fake';
  const model = String(body.model);
  const created = 1767225600;
  const usage = { prompt_tokens: inputTokens, completion_tokens: outputTokens, total_tokens: inputTokens + outputTokens, prompt_tokens_details: { cached_tokens: 0 } };
  if (body.stream !== true) {
    return json(res, {
      id, object: 'chat.completion', created, model,
      choices: [{ index: 0, message: { role: 'assistant', content: replyPieces.join(''), refusal: null }, finish_reason: 'stop', logprobs: null }],
      usage,
    });
  }
  const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    ({ id, object: 'chat.completion.chunk', created, model, choices, ...(includeUsage ? { usage: null } : {}), ...extra });
  const sse = startEvents(res);
  sse(null, chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]));
  await waitAfterFirst();
  for (const piece of replyPieces) sse(null, chunk([{ index: 0, delta: { content: piece }, finish_reason: null }]));
  sse(null, chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]));
  if (includeUsage) sse(null, chunk([], { usage }));
  res.end('data: [DONE]\n\n');
}

async function anthropicMessages(body: Record<string, unknown>, res: ServerResponse, waitAfterFirst: () => Promise<void>) {
  const message = { id: 'msg_fake', type: 'message', role: 'assistant', model: String(body.model), stop_sequence: null };
  const usage = { input_tokens: inputTokens, output_tokens: outputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  if (body.stream !== true) {
    return json(res, { ...message, content: [{ type: 'text', text: replyPieces.join('') }], stop_reason: 'end_turn', usage });
  }
  const sse = startEvents(res);
  sse('message_start', { type: 'message_start', message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } });
  await waitAfterFirst();
  sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  for (const piece of replyPieces) sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: piece } });
  sse('content_block_stop', { type: 'content_block_stop', index: 0 });
  sse('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: outputTokens } });
  sse('message_stop', { type: 'message_stop' });
  res.end();
}

function startEvents(res: ServerResponse) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  return (event: string | null, data: unknown) => {
    if (!res.writableEnded) res.write(`${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`);
  };
}

function json(res: ServerResponse, body: unknown) {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) text += chunk;
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    return {};
  }
}
