/** Where budget events are delivered, and the key they are signed with. */
export interface WebhookSettings {
  url: string;
  /** The HMAC-SHA256 key: the bytes of a Standard Webhooks secret (`whsec_` + base64). */
  key: Uint8Array;
}

type Env = Record<string, string | undefined>;

/**
 * Reads SPENDGATE_WEBHOOK_URL and SPENDGATE_WEBHOOK_SECRET. The secret is required with the URL: an unsigned
 * alert could be forged by anyone who can reach the receiver. It has the Standard Webhooks form, so that their
 * verification libraries accept it as it is.
 */
export function readWebhookSettings(env: Env): { settings: WebhookSettings | null; problems: string[] } {
  const url = env.SPENDGATE_WEBHOOK_URL?.trim();
  const secret = env.SPENDGATE_WEBHOOK_SECRET?.trim();
  if (!url) {
    return { settings: null, problems: secret ? ['SPENDGATE_WEBHOOK_SECRET is set but SPENDGATE_WEBHOOK_URL is not.'] : [] };
  }
  const problems: string[] = [];
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    // reported below
  }
  if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) {
    problems.push(`SPENDGATE_WEBHOOK_URL must be an http or https URL, not "${url}".`);
  }
  const key = secret ? secretKey(secret) : null;
  if (!secret) {
    problems.push('SPENDGATE_WEBHOOK_SECRET is required with SPENDGATE_WEBHOOK_URL (make one with: echo "whsec_$(openssl rand -base64 32)").');
  } else if (!key) {
    problems.push('SPENDGATE_WEBHOOK_SECRET must be "whsec_" followed by 24 to 64 bytes in base64 (make one with: echo "whsec_$(openssl rand -base64 32)").');
  }
  if (problems.length > 0 || !key) return { settings: null, problems };
  return { settings: { url, key }, problems };
}

function secretKey(secret: string): Uint8Array | null {
  const encoded = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(secret)?.[1];
  if (!encoded) return null;
  let binary: string;
  try {
    binary = atob(encoded);
  } catch {
    return null;
  }
  if (binary.length < 24 || binary.length > 64) return null;
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}
