type FetchHandler = (request: Request) => Response | Promise<Response>;

/**
 * Serves `fetch` under `prefix` as well as at the root: a platform that puts the function's name in front of every
 * path (Supabase: `/spendgate/v1/...`) reaches the same routes. The request is rebuilt with the prefix taken off, so
 * routing, body limits and model names with slashes see the path the API documents.
 */
export function withoutPathPrefix(prefix: string, fetch: FetchHandler): (request: Request) => Promise<Response> {
  return async (request) => {
    const url = new URL(request.url);
    if (url.pathname !== prefix && !url.pathname.startsWith(`${prefix}/`)) return fetch(request);
    url.pathname = url.pathname.slice(prefix.length) || '/';
    const hasBody = request.body !== null && request.method !== 'GET' && request.method !== 'HEAD';
    // `duplex` is what the Fetch standard requires with a streamed body; not every lib.dom.d.ts knows it yet.
    const init: RequestInit & { duplex?: 'half' } = {
      method: request.method,
      headers: request.headers,
      body: hasBody ? request.body : null,
      signal: request.signal,
      redirect: request.redirect,
      ...(hasBody ? { duplex: 'half' } : {}),
    };
    return fetch(new Request(url, init));
  };
}
