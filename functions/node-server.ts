// `npm start`: the local server on Node. Applies pending migrations, then listens.
import { runLocalServer } from './local-server.ts';
import { openDatabase } from './node/database.ts';
import { readMigrations } from './node/migrations.ts';
import { listen } from './node/request-listener.ts';
import { stdoutLines } from './node/stdout-lines.ts';

await runLocalServer({
  env: process.env,
  openDatabase,
  readMigrations,
  listen,
  onStopSignal: (stop) => {
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  },
  exit: (code) => process.exit(code),
  logRequest: stdoutLines(),
});
