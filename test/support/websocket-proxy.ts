// What Neon serves in front of Postgres, in miniature: each WebSocket carries one Postgres connection's bytes, both
// ways, to the address its URL names (`?address=host:port`), so `@neondatabase/serverless` can reach a local server.
import { connect, type Socket } from 'node:net';
import { type RawData, WebSocketServer } from 'ws';

export interface WebSocketProxy {
  port: number;
  /** Connections opened through it so far. */
  connections(): number;
  /** Connections open through it now. */
  openConnections(): number;
  close(): Promise<void>;
}

export async function startWebSocketProxy(): Promise<WebSocketProxy> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const sockets = new Set<Socket>();
  let opened = 0;
  server.on('connection', (ws, request) => {
    const address = new URL(request.url ?? '/', 'ws://proxy').searchParams.get('address') ?? '';
    const match = /^(.+):(\d+)$/.exec(address);
    if (!match) {
      ws.close(1008, 'no ?address=host:port');
      return;
    }
    opened += 1;
    const tcp = connect(Number(match[2]), match[1]!);
    sockets.add(tcp);
    // Bytes that arrive before the TCP connection is up wait in the socket's own buffer.
    ws.on('message', (data: RawData) => tcp.write(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)));
    tcp.on('data', (chunk) => ws.send(chunk));
    ws.on('close', () => tcp.end());
    ws.on('error', () => tcp.destroy());
    tcp.on('close', () => {
      sockets.delete(tcp);
      ws.close();
    });
    tcp.on('error', () => ws.terminate());
  });
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the proxy has no port');
  return {
    port: address.port,
    connections: () => opened,
    openConnections: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        for (const client of server.clients) client.terminate();
        server.close(() => resolve());
      }),
  };
}
