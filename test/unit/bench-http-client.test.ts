// The bench's HTTP client (bench/service/http-client.ts) against a node:http server: the answers it reads, the
// connections it keeps alive and the limit on them.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { httpClient } from '../../bench/service/http-client.ts';

let server: Server | null = null;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(null));
  server = null;
});

/** A server that echoes the request back as JSON, by Content-Length, in chunks (/chunked) or closing (/close). */
async function echoServer(): Promise<{ base: string; connections: () => number }> {
  let connections = 0;
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const text = JSON.stringify({ path: request.url, body: Buffer.concat(chunks).toString(), auth: request.headers.authorization });
      if (request.url === '/chunked') {
        response.writeHead(201, { 'content-type': 'application/json' });
        response.write(text.slice(0, 5));
        setTimeout(() => response.end(text.slice(5)), 5);
      } else if (request.url === '/close') {
        response.writeHead(200, { 'content-length': Buffer.byteLength(text), connection: 'close' }).end(text);
      } else {
        // Slow enough that concurrent requests overlap.
        setTimeout(() => response.writeHead(200, { 'content-length': Buffer.byteLength(text) }).end(text), 10);
      }
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections };
}

describe('the bench HTTP client', () => {
  it('reads answers by Content-Length and by chunks, with UTF-8 bodies intact', async () => {
    const { base } = await echoServer();
    const client = httpClient(base, 4);
    try {
      const plain = await client.post('/plain', '{"x":"é €"}', 'Bearer t');
      expect(plain.status).toBe(200);
      expect(JSON.parse(plain.text)).toEqual({ path: '/plain', body: '{"x":"é €"}', auth: 'Bearer t' });
      const chunked = await client.post('/chunked', '{}', 'Bearer t');
      expect(chunked.status).toBe(201);
      expect(JSON.parse(chunked.text)).toEqual({ path: '/chunked', body: '{}', auth: 'Bearer t' });
    } finally {
      client.close();
    }
  });

  it('keeps connections alive, never opens more than allowed, and opens a new one after a close', async () => {
    const { base, connections } = await echoServer();
    const client = httpClient(base, 2);
    try {
      for (let i = 0; i < 3; i++) expect((await client.post('/one', String(i), 'Bearer t')).status).toBe(200);
      expect(connections()).toBe(1);
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => client.post(`/many/${i}`, String(i), 'Bearer t')));
      expect(answers.map((a) => JSON.parse(a.text).body)).toEqual(Array.from({ length: 10 }, (_, i) => String(i)));
      expect(connections()).toBe(2);
      expect((await client.post('/close', 'x', 'Bearer t')).status).toBe(200);
      await Promise.all(Array.from({ length: 4 }, () => client.post('/after', 'y', 'Bearer t')));
      expect(connections()).toBe(3);
    } finally {
      client.close();
    }
  });

  it('fails a request whose connection the server drops, and every request once closed', async () => {
    const { base } = await echoServer();
    server!.removeAllListeners('request');
    server!.on('request', (request) => request.socket.destroy());
    const client = httpClient(base, 1);
    await expect(client.post('/dropped', '{}', 'Bearer t')).rejects.toThrow();
    client.close();
    await expect(client.post('/late', '{}', 'Bearer t')).rejects.toThrow('closed');
  });
});
