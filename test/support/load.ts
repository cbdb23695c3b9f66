// HTTP calls to server processes, as a gateway makes them: keep-alive connections, JSON, and a failure to connect
// (a server that is gone) reported as a status of 0 instead of an exception.

export interface HttpReply {
  /** 0 when the request never got an answer (connection refused or reset). */
  status: number;
  // The tests read answers field by field.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  headers: Headers | null;
  /** Milliseconds from sending to the answer (or the failure). */
  ms: number;
}

export async function send(base: string, token: string, method: string, path: string, body?: unknown,
                           timeoutMs = 30_000): Promise<HttpReply> {
  const started = Date.now();
  try {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed, headers: res.headers, ms: Date.now() - started };
  } catch (error) {
    return { status: 0, body: { error: String(error) }, headers: null, ms: Date.now() - started };
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
