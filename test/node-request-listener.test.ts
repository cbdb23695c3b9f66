// The Node server's request listener (functions/node/request-listener.ts) over real HTTP: small bodies reach the app
// read ahead as bytes, larger and chunked ones as the Request's stream, and a keep-alive connection outlives both;
// and the app's handling of a body handed over as bytes.
import { type AddressInfo } from 'node:net';
import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppBindings } from '../lib/app-env.ts';
import { readAheadBytes, requestListener } from '../functions/node/request-listener.ts';
import { backends } from './support/databases.ts';
import { type Harness, startHarness, tokens } from './support/harness.ts';

interface Echo {
  /** Bytes the listener read ahead, or null when the body came as a stream. */
  readAhead: number | null;
  text: string;
}

/** What the app would see: the binding, and the Request's own body read as text. */
async function echo(request: Request, bindings: AppBindings): Promise<Response> {
  const answer: Echo = { readAhead: bindings.body?.byteLength ?? null, text: await request.text() };
  return Response.json(answer);
}

interface Sent {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function send(base: URL, agent: Agent, path: string, body: string, headers: Record<string, string> = {}, chunked = false): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const sent = httpRequest({ agent, hostname: base.hostname, port: base.port, path, method: 'POST',
      headers: { 'content-type': 'application/json', ...(chunked ? {} : { 'content-length': Buffer.byteLength(body) }), ...headers } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: response.headers }));
      });
    sent.on('error', reject);
    if (chunked) {
      // Two writes without a length: sent with Transfer-Encoding: chunked.
      sent.write(body.slice(0, 3));
      sent.end(body.slice(3));
    } else {
      sent.end(body);
    }
  });
}

async function listen(server: Server): Promise<URL> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

describe('the Node request listener', () => {
  let server: Server;
  let base: URL;
  let connections = 0;
  beforeAll(async () => {
    server = createServer(requestListener(echo, '127.0.0.1'));
    server.on('connection', () => connections++);
    base = await listen(server);
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('reads a small body ahead: the app gets its bytes, and the Request built from them reads the same', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const body = JSON.stringify({ prompt: 'héllo ✓', n: 1 });
    const answer = await send(base, agent, '/any', body);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ readAhead: Buffer.byteLength(body), text: body });
    agent.destroy();
  });

  it('streams a body past the read-ahead size, and one sent chunked, as before', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const large = JSON.stringify({ pad: 'x'.repeat(readAheadBytes) });
    expect(JSON.parse((await send(base, agent, '/any', large)).body)).toEqual({ readAhead: null, text: large });
    const small = '{"chunked":true}';
    expect(JSON.parse((await send(base, agent, '/any', small, {}, true)).body)).toEqual({ readAhead: null, text: small });
    agent.destroy();
  });

  it('keeps a keep-alive connection open across read-ahead bodies, with pauses between them', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const before = connections;
    for (let i = 0; i < 3; i++) {
      const answer = await send(base, agent, '/any', `{"i":${i}}`);
      expect(JSON.parse(answer.body)).toEqual({ readAhead: 7, text: `{"i":${i}}` });
      await new Promise((resolve) => setTimeout(resolve, 700));
    }
    // One connection for all three: none was closed under the client between requests.
    expect(connections - before).toBe(1);
    agent.destroy();
  });
});

describe.each(backends)('a body handed to the app as bytes (%s)', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(backend);
  });
  afterAll(() => h.close());

  const post = (path: string, bytes: Uint8Array, streamBody: string) =>
    h.app.fetch(new Request(`http://app${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.service}`, 'content-type': 'application/json' },
      body: streamBody,
    }), { body: bytes });

  it('is what the app reads, not the Request\'s stream', async () => {
    const bytes = new TextEncoder().encode(JSON.stringify({ scopes: { key: 'bytes-binding' }, estimate: { cost: '0.25' } }));
    const response = await post('/v1/reservations', bytes, 'not json');
    expect(response.status).toBe(201);
    expect(await response.json()).toMatchObject({ status: 'held', reserved_cost: '0.250000' });
  });

  it('past the route\'s body limit: 400 naming the size, with the connection marked to close', async () => {
    const bytes = new Uint8Array(1024 * 1024 + 1).fill(0x20);
    const response = await post('/v1/reservations/00000000-0000-4000-8000-000000000000/settle', bytes, '{}');
    expect(response.status).toBe(400);
    expect(response.headers.get('connection')).toBe('close');
    expect(JSON.stringify(await response.json())).toContain('the body is larger than 1048576 bytes');
  });
});
