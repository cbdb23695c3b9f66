// The HTTP server's request listener: @hono/node-server's, with small bodies read whole first. The adapter otherwise
// builds a web Request with an abort signal and two body streams for every POST, about a tenth of the server's CPU
// under load; a body read here reaches the app as bytes (the `body` binding), and no Request body is ever built.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import type { AppBindings } from '../../lib/app-env.ts';
import type { Listener } from '../local-server.ts';

type Fetch = (request: Request, bindings: AppBindings) => Response | Promise<Response>;

/** Bodies up to this size, with a Content-Length, are read before the app runs; larger or chunked ones stream as
 * before. Below the smallest body limit (1 MiB), so no body the app would refuse unread is read here. */
export const readAheadBytes = 64 * 1024;

export function requestListener(fetch: Fetch, hostname: string) {
  const listener = getRequestListener(
    (request, { incoming }) =>
      fetch(request, { body: 'rawBody' in incoming && incoming.rawBody instanceof Uint8Array ? incoming.rawBody : undefined }),
    { hostname },
  );
  return (incoming: IncomingMessage & { rawBody?: Buffer }, outgoing: ServerResponse) => {
    const length = Number(incoming.headers['content-length']);
    if (!(length > 0 && length <= readAheadBytes) || incoming.headers['transfer-encoding'] !== undefined) {
      return listener(incoming, outgoing);
    }
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.once('end', () => {
      // Also where the adapter looks for a body already read, should anything build the Request after all.
      incoming.rawBody = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      void listener(incoming, outgoing);
    });
    // The client went away mid-body: there is no one to answer.
    incoming.once('error', () => incoming.destroy());
  };
}

/** An HTTP server with the listener on hostname:port (0: a port the OS picks), once it listens. */
export function listen(fetch: Fetch, hostname: string, port: number): Promise<Listener> {
  return new Promise((resolve) => {
    const server = createServer(requestListener(fetch, hostname));
    server.listen(port, hostname, () => {
      const address = server.address();
      resolve({
        port: typeof address === 'object' && address !== null ? address.port : port,
        close: () => new Promise<void>((closed) => server.close(() => closed())),
      });
    });
  });
}
