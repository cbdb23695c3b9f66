import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../lib/config.ts';
import { webhookSignature } from '../../lib/webhook-signature.ts';
import { retryDelaySeconds } from '../../lib/webhooks.ts';

const tokens = { SPENDGATE_ADMIN_TOKEN: 'admin-token-0123456789', SPENDGATE_SERVICE_TOKEN: 'service-token-0123456789' };
const config = (env: Record<string, string>) => loadConfig({ ...tokens, ...env }, { allowGeneratedTokens: false });

describe('webhook configuration', () => {
  it('is off without SPENDGATE_WEBHOOK_URL', () => {
    expect(config({}).webhook).toBeNull();
  });

  it('reads the URL and the Standard Webhooks secret as key bytes', () => {
    const key = Buffer.from('0123456789abcdef0123456789abcdef');
    const settings = config({ SPENDGATE_WEBHOOK_URL: 'https://hooks.example.test/in', SPENDGATE_WEBHOOK_SECRET: `whsec_${key.toString('base64')}` }).webhook;
    expect(settings?.url).toBe('https://hooks.example.test/in');
    expect(Buffer.from(settings!.key)).toEqual(key);
  });

  it.each([
    [{ SPENDGATE_WEBHOOK_URL: 'https://hooks.example.test/in' }, /SPENDGATE_WEBHOOK_SECRET is required/],
    [{ SPENDGATE_WEBHOOK_URL: 'https://hooks.example.test/in', SPENDGATE_WEBHOOK_SECRET: 'not-a-whsec-secret-at-all' }, /must be "whsec_"/],
    [{ SPENDGATE_WEBHOOK_URL: 'https://hooks.example.test/in', SPENDGATE_WEBHOOK_SECRET: 'whsec_c2hvcnQ=' }, /24 to 64 bytes/],
    [{ SPENDGATE_WEBHOOK_URL: 'ftp://hooks.example.test/in', SPENDGATE_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }, /http or https URL/],
    [{ SPENDGATE_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }, /SPENDGATE_WEBHOOK_URL is not/],
  ])('refuses %j', (env, message) => {
    expect(() => config(env)).toThrow(ConfigError);
    expect(() => config(env)).toThrow(message);
  });
});

describe('webhookSignature', () => {
  it('matches the Standard Webhooks test vector', async () => {
    const key = Uint8Array.from(atob('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'), (c) => c.charCodeAt(0));
    expect(await webhookSignature(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'))
      .toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });
});

describe('retryDelaySeconds', () => {
  it('doubles from a minute and stays at six hours', () => {
    expect([1, 2, 3, 4, 5, 9, 10, 11, 50, 1000].map(retryDelaySeconds)).toEqual(
      [60, 120, 240, 480, 960, 15360, 21600, 21600, 21600, 21600]);
  });
});
