// `npm start`: the local server on Node. Applies pending migrations, then listens.
import { serve } from '@hono/node-server';
import { runLocalServer } from './local-server.ts';
import { openDatabase } from './node/database.ts';
import { readMigrations } from './node/migrations.ts';

await runLocalServer({
  env: process.env,
  openDatabase,
  readMigrations,
  listen: (fetch, hostname, port) =>
    new Promise((resolve) => {
      const server = serve({ fetch, hostname, port }, (info) =>
        resolve({ port: info.port, close: () => new Promise<void>((closed) => server.close(() => closed())) }),
      );
    }),
  onStopSignal: (stop) => {
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  },
  exit: (code) => process.exit(code),
});
