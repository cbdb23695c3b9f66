// The load generator's HTTP/1.1 client: keep-alive connections over node:net, one request at a time on each, the
// request written as one string and the answer read by Content-Length or chunks. With node:http's client (an
// Agent, a ClientRequest and an IncomingMessage with their streams per request) the load generator took 0.33-0.45
// ms of CPU per pair at 600 pairs/s, with this one 0.21-0.24: on 2 cores, CPU taken from the server and Postgres
// it measures, and time its own event loop adds to every latency it records. undici's Pool was no cheaper than
// node:http here (135-148 µs per request against a trivial server at 1,200 a second; node:http 140-148, this 90-106).
import { connect, type Socket } from 'node:net';

export interface Answer {
  status: number;
  text: string;
}

interface Pending {
  resolve(answer: Answer): void;
  reject(error: Error): void;
}

/** One keep-alive connection: a request is sent only once the answer to the one before it has been read. */
class Connection {
  private readonly socket: Socket;
  private readonly onIdle: (connection: Connection) => void;
  private readonly onGone: (connection: Connection) => void;
  private pending: Pending | null = null;
  private buffered: Buffer = Buffer.alloc(0);

  constructor(host: string, port: number, onIdle: (connection: Connection) => void, onGone: (connection: Connection) => void) {
    this.onIdle = onIdle;
    this.onGone = onGone;
    this.socket = connect({ host, port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => this.read(chunk));
    const gone = (error?: Error) => {
      this.onGone(this);
      this.pending?.reject(error ?? new Error('the server closed the connection'));
      this.pending = null;
    };
    this.socket.on('error', gone);
    this.socket.on('close', () => gone());
  }

  send(request: string, pending: Pending): void {
    this.pending = pending;
    this.socket.write(request);
  }

  close(): void {
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    let answer: ReturnType<typeof parseAnswer>;
    try {
      answer = parseAnswer(this.buffered);
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (!answer) return;
    if (answer.rest.length > 0 || !this.pending) {
      this.fail(new Error('the server sent more than one answer to one request'));
      return;
    }
    this.buffered = Buffer.alloc(0);
    const pending = this.pending;
    this.pending = null;
    if (answer.close) this.close();
    else this.onIdle(this);
    pending.resolve({ status: answer.status, text: answer.body.toString() });
  }

  private fail(error: Error): void {
    this.pending?.reject(error);
    this.pending = null;
    this.close();
  }
}

const headEnd = Buffer.from('\r\n\r\n');

/** A whole answer at the start of `data`, or null while part of it is still to come. */
function parseAnswer(data: Buffer): { status: number; body: Buffer; close: boolean; rest: Buffer } | null {
  const end = data.indexOf(headEnd);
  if (end < 0) return null;
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1]);
  if (!status) throw new Error(`not an HTTP answer: ${lines[0]}`);
  const headers = new Map(lines.slice(1).map((line) => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()] as const;
  }));
  const close = headers.get('connection')?.toLowerCase() === 'close';
  const bodyStart = end + headEnd.length;
  if (headers.get('transfer-encoding')?.toLowerCase() === 'chunked') {
    const chunks: Buffer[] = [];
    for (let at = bodyStart; ;) {
      const sizeEnd = data.indexOf('\r\n', at);
      if (sizeEnd < 0) return null;
      const size = parseInt(data.subarray(at, sizeEnd).toString('latin1'), 16);
      if (Number.isNaN(size)) throw new Error('a chunked answer without a chunk size');
      if (data.length < sizeEnd + 2 + size + 2) return null;
      if (size === 0) return { status, body: Buffer.concat(chunks), close, rest: data.subarray(sizeEnd + 4) };
      chunks.push(data.subarray(sizeEnd + 2, sizeEnd + 2 + size));
      at = sizeEnd + 2 + size + 2;
    }
  }
  const length = Number(headers.get('content-length') ?? 0);
  if (data.length < bodyStart + length) return null;
  return { status, body: data.subarray(bodyStart, bodyStart + length), close, rest: data.subarray(bodyStart + length) };
}

/** Up to `connections` keep-alive connections to `base`; a request waits for a free one when all are busy. */
export function httpClient(base: string, connections: number) {
  const { hostname, port, host } = new URL(base);
  const idle: Connection[] = [];
  const waiting: Array<() => void> = [];
  // Every connection open, idle or busy.
  const all = new Set<Connection>();
  let closed = false;
  const release = (connection: Connection) => {
    const next = waiting.shift();
    idle.push(connection);
    next?.();
  };
  const forget = (connection: Connection) => {
    if (!all.delete(connection)) return;
    const at = idle.indexOf(connection);
    if (at >= 0) idle.splice(at, 1);
    waiting.shift()?.();
  };
  const take = async (): Promise<Connection> => {
    for (;;) {
      if (closed) throw new Error('the client is closed');
      const connection = idle.pop();
      if (connection) return connection;
      if (all.size < connections) {
        const made = new Connection(hostname, Number(port), release, forget);
        all.add(made);
        return made;
      }
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
  };
  return {
    async post(path: string, body: string, authorization: string): Promise<Answer> {
      const connection = await take();
      const request = `POST ${path} HTTP/1.1\r\nhost: ${host}\r\nauthorization: ${authorization}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      return new Promise<Answer>((resolve, reject) => connection.send(request, { resolve, reject }));
    },
    close(): void {
      closed = true;
      for (const connection of all) connection.close();
      for (const wake of waiting.splice(0)) wake();
    },
  };
}
