// `npm start`: the local server on Node. Applies pending migrations, then listens.
import { createServer } from 'node:http';
import { runLocalServer } from './local-server.ts';
import { openDatabase } from './node/database.ts';
import { readMigrations } from './node/migrations.ts';
import { requestListener } from './node/request-listener.ts';
import { stdoutLines } from './node/stdout-lines.ts';

await runLocalServer({
  env: process.env,
  openDatabase,
  readMigrations,
  listen: (fetch, hostname, port) =>
    new Promise((resolve) => {
      const server = createServer(requestListener((request, bindings) => fetch(request, bindings), hostname));
      server.listen(port, hostname, () => {
        const address = server.address();
        resolve({
          port: typeof address === 'object' && address !== null ? address.port : port,
          close: () => new Promise<void>((closed) => server.close(() => closed())),
        });
      });
    }),
  onStopSignal: (stop) => {
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  },
  exit: (code) => process.exit(code),
  logRequest: stdoutLines(),
});
