/**
 * The request with `prefix` taken off the front of its path, for a platform that puts the function's name in front
 * of every path (Supabase: `/spendgate/v1/...`); a path without the prefix comes back as it is. The request is
 * rebuilt, so routing, body limits and model names with slashes see the path the API documents.
 */
export function withoutPathPrefix(prefix: string, request: Request): Request {
  const url = new URL(request.url);
  if (url.pathname !== prefix && !url.pathname.startsWith(`${prefix}/`)) return request;
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
  return new Request(url, init);
}
