// The HTTP suites' server process under Node (TEST_SERVER=node): the clocked test app behind the request listener
// `npm start` serves the real one with. Prints "listening on <port>" once it accepts connections.
import { createServer } from 'node:http';
import { requestListener } from '../../functions/node/request-listener.ts';
import { clockedApp } from './clocked-app.ts';

const app = clockedApp(process.env);
const server = createServer(requestListener((request, bindings) => app.fetch(request, bindings), '127.0.0.1'));
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening on ${typeof address === 'object' && address !== null ? address.port : ''}`);
});
process.on('SIGTERM', () => {
  server.close();
  void app.close().finally(() => process.exit(0));
});
