// The app as the HTTP suites drive it in a server process of its own (TEST_SERVER=node|deno): the same createApp on
// postgres.js, except that each request may carry the time the test's manual clock shows, in a header that only
// this test entry reads. No production entry point has such a header.
import { AsyncLocalStorage } from 'node:async_hooks';
import { createApp } from '../../lib/app.ts';
import type { AppBindings } from '../../lib/app-env.ts';
import type { Clock } from '../../lib/clock.ts';
import { loadConfig } from '../../lib/config.ts';
import { postgresDatabase } from '../../lib/db/postgres.ts';

export const clockHeader = 'x-spendgate-test-clock';

export interface ClockedApp {
  fetch(request: Request, bindings?: AppBindings): Promise<Response>;
  close(): Promise<void>;
}

export function clockedApp(env: Record<string, string | undefined>): ClockedApp {
  if (!env.DATABASE_URL) throw new Error('DATABASE_URL is not set');
  // Requests run concurrently, each at its own time: the clock reads the time of the request it serves.
  const requestTime = new AsyncLocalStorage<Date | null>();
  const clock: Clock = { now: () => requestTime.getStore() ?? null };
  const db = postgresDatabase(env.DATABASE_URL, { max: Number(env.SPENDGATE_POOL_SIZE ?? 10) });
  const app = createApp({
    db,
    config: loadConfig(env, { allowGeneratedTokens: false }),
    clock,
    logError: env.TEST_LOG_ERRORS ? undefined : () => {},
  });
  return {
    fetch: async (request, bindings) => {
      const at = request.headers.get(clockHeader);
      return requestTime.run(at ? new Date(at) : null, () => app.fetch(request, bindings));
    },
    close: () => db.close(),
  };
}
