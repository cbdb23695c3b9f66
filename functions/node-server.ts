// `npm start`: the local server on Node. Applies pending migrations, then listens.
import { serve } from '@hono/node-server';
import { createApp } from '../lib/app.ts';
import { ConfigError, loadConfig } from '../lib/config.ts';
import { migrate } from '../lib/migrate.ts';
import { openDatabase } from './node/database.ts';
import { readMigrations } from './node/migrations.ts';

const env = process.env;
const hostname = env.HOST ?? '127.0.0.1';
const port = Number(env.PORT ?? 8787);
const loopback = ['127.0.0.1', 'localhost', '::1'].includes(hostname) || hostname.startsWith('127.');

let config;
try {
  config = loadConfig(env, { allowGeneratedTokens: loopback });
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`spendgate: refusing to start on ${hostname}:\n${error.message}`);
  process.exit(78); // EX_CONFIG
}

const { db, description } = await openDatabase(env);
try {
  const applied = await migrate(db, readMigrations(), { rateWindowSeconds: config.rateWindowSeconds });
  if (applied.length > 0) console.log(`spendgate: applied migrations ${applied.join(', ')}`);
} catch (error) {
  console.error(`spendgate: cannot migrate ${description}: ${error instanceof Error ? error.message : String(error)}`);
  await db.close().catch(() => {});
  process.exit(1);
}

const app = createApp({ db, config });
const server = serve({ fetch: app.fetch, hostname, port }, (info) => {
  console.log(`spendgate: listening on http://${hostname}:${info.port} (${description})`);
  console.log(`spendgate: API docs at http://${hostname}:${info.port}/docs`);
  for (const role of config.generatedTokens) {
    console.log(`spendgate: generated ${role} token (set SPENDGATE_${role.toUpperCase()}_TOKEN to choose one): ${config.tokens[role]}`);
  }
});

const shutdown = () => {
  server.close(() => {
    db.close().finally(() => process.exit(0));
  });
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
