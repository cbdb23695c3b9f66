// The HTTP suites' server process under Node (TEST_SERVER=node): the clocked test app behind the request listener
// `npm start` serves the real one with. Prints "listening on <port>" once it accepts connections.
import { listen } from '../../functions/node/request-listener.ts';
import { clockedApp } from './clocked-app.ts';

const app = clockedApp(process.env);
const server = await listen(app.fetch, '127.0.0.1', Number(process.env.PORT ?? 0));
console.log(`listening on ${server.port}`);
process.on('SIGTERM', () => {
  void server.close();
  void app.close().finally(() => process.exit(0));
});
