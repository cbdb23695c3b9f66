// `npm run start:deno`: the local server on Deno, configured as `npm start` is. Applies pending migrations, then
// listens.
import { runLocalServer } from './local-server.ts';
import { openDatabase } from './deno/database.ts';
import { readMigrations } from './deno/migrations.ts';

await runLocalServer({
  env: Deno.env.toObject(),
  openDatabase,
  readMigrations,
  listen: (fetch, hostname, port) =>
    new Promise((resolve) => {
      // The request alone: Deno's second argument is its connection info, the app's is its bindings.
      const server = Deno.serve({ hostname, port, onListen: (address) => resolve({ port: address.port, close: () => server.shutdown() }) },
                                 (request) => fetch(request));
    }),
  onStopSignal: (stop) => {
    Deno.addSignalListener('SIGINT', stop);
    Deno.addSignalListener('SIGTERM', stop);
  },
  exit: (code) => Deno.exit(code),
});
