import type { Context } from 'hono';
import type { App } from '../app-env.ts';
import { dashboardHtml } from '../dashboard/html.ts';
import { dashboardScript } from '../dashboard/script.ts';
import { dashboardStyles } from '../dashboard/styles.ts';

// The page loads only its own script and stylesheet and talks only to this origin: nothing inline, nothing from
// elsewhere, no framing. (The global secureHeaders sets no CSP; this one is for the page alone.)
const contentSecurityPolicy = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self' data:",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

function asset(c: Context, body: string, type: string): Response {
  c.header('content-security-policy', contentSecurityPolicy);
  // Revalidated each time, so a deploy shows at once; the files are small.
  c.header('cache-control', 'no-cache');
  c.header('content-type', type);
  return c.body(body);
}

/** GET /dashboard and its two files. Public: they hold no data; the script reads /v1/dashboard with the admin token. */
export function register(app: App) {
  app.get('/dashboard', (c) => asset(c, dashboardHtml, 'text/html; charset=utf-8'));
  app.get('/dashboard/app.js', (c) => asset(c, dashboardScript, 'text/javascript; charset=utf-8'));
  app.get('/dashboard/app.css', (c) => asset(c, dashboardStyles, 'text/css; charset=utf-8'));
}
