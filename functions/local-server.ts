// The local server's start-up, the same under Node (`npm start`) and Deno (`npm run start:deno`): one
// configuration, one order of steps, one set of messages. Each entry point supplies what its runtime does its own way.
import { createApp } from '../lib/app.ts';
import type { AppBindings } from '../lib/app-env.ts';
import { ConfigError, loadConfig } from '../lib/config.ts';
import type { Database } from '../lib/db.ts';
import { type Migration, migrate } from '../lib/migrate.ts';

type Env = Record<string, string | undefined>;
export type FetchHandler = (request: Request, bindings?: AppBindings) => Response | Promise<Response>;

export interface Listener {
  port: number;
  close(): Promise<void>;
}

export interface LocalRuntime {
  env: Env;
  openDatabase(env: Env): Promise<{ db: Database; description: string }>;
  readMigrations(): Migration[];
  listen(fetch: FetchHandler, hostname: string, port: number): Promise<Listener>;
  /** Calls `stop` on SIGINT and SIGTERM. */
  onStopSignal(stop: () => void): void;
  exit(code: number): never;
  /** Where the request log's lines go; the console by default. */
  logRequest?: (line: string) => void;
}

/** Checks the configuration (exit 78 naming what is wrong), applies pending migrations (exit 1 when the database
 * cannot be reached), then serves until SIGINT or SIGTERM (exit 0). */
export async function runLocalServer(runtime: LocalRuntime): Promise<void> {
  const { env } = runtime;
  const hostname = env.HOST ?? '127.0.0.1';
  const port = Number(env.PORT ?? 8787);
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(hostname) || hostname.startsWith('127.');

  let config;
  let opened;
  try {
    config = loadConfig(env, { allowGeneratedTokens: loopback });
    opened = await runtime.openDatabase(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`spendgate: refusing to start on ${hostname}:\n${error.message}`);
    return runtime.exit(78); // EX_CONFIG
  }
  const { db, description } = opened;

  try {
    const applied = await migrate(db, runtime.readMigrations(), { rateWindowSeconds: config.rateWindowSeconds });
    if (applied.length > 0) console.log(`spendgate: applied migrations ${applied.join(', ')}`);
  } catch (error) {
    console.error(`spendgate: cannot migrate ${description}: ${error instanceof Error ? error.message : String(error)}`);
    await db.close().catch(() => {});
    return runtime.exit(1);
  }

  const app = createApp({ db, config, logRequest: runtime.logRequest });
  const listener = await runtime.listen(app.fetch, hostname, port);
  console.log(`spendgate: listening on http://${hostname}:${listener.port} (${description})`);
  console.log(`spendgate: API docs at http://${hostname}:${listener.port}/docs`);
  for (const role of config.generatedTokens) {
    console.log(`spendgate: generated ${role} token (set SPENDGATE_${role.toUpperCase()}_TOKEN to choose one): ${config.tokens[role]}`);
  }

  runtime.onStopSignal(() => {
    void listener
      .close()
      .then(() => db.close())
      .finally(() => runtime.exit(0));
  });
}
