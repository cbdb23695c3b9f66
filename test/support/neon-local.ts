// The Neon driver pointed at a local Postgres through a WebSocket proxy, as it would reach Neon from the edge.
import { neonConfig } from '@neondatabase/serverless';
import WebSocket from 'ws';
import type { Database } from '../../lib/db.ts';
import { neonDatabase } from '../../lib/db/neon.ts';
import { startWebSocketProxy, type WebSocketProxy } from './websocket-proxy.ts';

export interface NeonLocal {
  db: Database;
  proxy: WebSocketProxy;
  close(): Promise<void>;
}

// The driver's settings are global, so every database in this process shares one proxy, closed with the last.
let shared: Promise<WebSocketProxy> | null = null;
let users = 0;

async function sharedProxy(): Promise<WebSocketProxy> {
  if (!shared) {
    shared = startWebSocketProxy().then((proxy) => {
      // Node 20 has no WebSocket of its own; the proxy speaks plain ws:// and the local server needs no TLS inside
      // it; nothing is pipelined, since the server may ask for no password.
      neonConfig.webSocketConstructor = WebSocket;
      neonConfig.wsProxy = (host, port) => `127.0.0.1:${proxy.port}/v2?address=${host}:${port}`;
      neonConfig.useSecureWebSocket = false;
      neonConfig.forceDisablePgSSL = true;
      neonConfig.pipelineTLS = false;
      neonConfig.pipelineConnect = false;
      return proxy;
    });
  }
  return shared;
}

/** Configures the Neon driver to reach local servers through the proxy; returns a release for when done. */
export async function useNeonProxy(): Promise<{ proxy: WebSocketProxy; release(): Promise<void> }> {
  users += 1;
  const proxy = await sharedProxy();
  let released = false;
  return {
    proxy,
    async release() {
      if (released) return;
      released = true;
      users -= 1;
      if (users === 0) {
        shared = null;
        await proxy.close();
      }
    },
  };
}

/** `neonDatabase(url)` whose connections go through the proxy. */
export async function neonThroughProxy(url: string, options: { max?: number } = {}): Promise<NeonLocal> {
  const { proxy, release } = await useNeonProxy();
  const db = neonDatabase(url, { max: options.max ?? 4 });
  return {
    db,
    proxy,
    async close() {
      await db.close();
      await release();
    },
  };
}
