// The HTTP suites' server process under Node (TEST_SERVER=node): the clocked test app on @hono/node-server, as
// `npm start` serves the real one. Prints "listening on <port>" once it accepts connections.
import { serve } from '@hono/node-server';
import { clockedApp } from './clocked-app.ts';

const app = clockedApp(process.env);
const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: Number(process.env.PORT ?? 0) }, (info) => {
  console.log(`listening on ${info.port}`);
});
process.on('SIGTERM', () => {
  server.close();
  void app.close().finally(() => process.exit(0));
});
