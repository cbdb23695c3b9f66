/** Usage of one scope (or of its model limit) as the SQL reports it. */
interface ScopeWindow {
  kind: string;
  rpm: number | null;
  tpm: number | null;
  requests_remaining: number | null;
  tokens_remaining: number | null;
  requests_reset_seconds: number;
  tokens_reset_seconds: number;
}

function isScopeWindow(value: unknown): value is ScopeWindow {
  return typeof value === 'object' && value !== null && 'kind' in value && 'rpm' in value && 'tpm' in value;
}

/**
 * Rate-limit headers for a reserve answer: per kind of scope (the tightest scope of that kind when several are
 * named) and, OpenAI's names, for the tightest scope of all. Remaining counts never go below zero.
 */
export function rateLimitHeaders(scopes: unknown): Record<string, string> {
  const windows: ScopeWindow[] = [];
  for (const scope of Array.isArray(scopes) ? scopes : []) {
    if (!isScopeWindow(scope)) continue;
    windows.push(scope);
    const modelLimit: unknown = 'model_limit' in scope ? scope.model_limit : null;
    if (typeof modelLimit === 'object' && modelLimit !== null) windows.push({ ...(modelLimit as ScopeWindow), kind: scope.kind });
  }
  const headers: Record<string, string> = {};
  for (const [unit, limitKey, remainingKey, resetKey] of [
    ['requests', 'rpm', 'requests_remaining', 'requests_reset_seconds'],
    ['tokens', 'tpm', 'tokens_remaining', 'tokens_reset_seconds'],
  ] as const) {
    const limited = windows
      .filter((w) => w[limitKey] !== null && w[remainingKey] !== null)
      .sort((a, b) => (a[remainingKey] ?? 0) - (b[remainingKey] ?? 0));
    for (const w of [...limited].reverse()) {
      // Reversed so that the tightest scope of each kind writes last and wins.
      headers[`x-ratelimit-${w.kind}-limit-${unit}`] = String(w[limitKey]);
      headers[`x-ratelimit-${w.kind}-remaining-${unit}`] = String(Math.max(0, w[remainingKey] ?? 0));
    }
    const tightest = limited[0];
    if (tightest) {
      headers[`x-ratelimit-limit-${unit}`] = String(tightest[limitKey]);
      headers[`x-ratelimit-remaining-${unit}`] = String(Math.max(0, tightest[remainingKey] ?? 0));
      headers[`x-ratelimit-reset-${unit}`] = openAIDuration(tightest[resetKey]);
    }
  }
  return headers;
}

/** Seconds as OpenAI writes them in x-ratelimit-reset-*: "17s", "1m52s", "6m0s". */
function openAIDuration(seconds: number): string {
  const minutes = Math.floor(seconds / 60);
  return minutes > 0 ? `${minutes}m${seconds % 60}s` : `${seconds}s`;
}
