// The HTTP suites' server process under Deno (TEST_SERVER=deno): the clocked test app on Deno.serve, as
// `npm run start:deno` serves the real one. Prints "listening on <port>" once it accepts connections.
import { clockedApp } from '../clocked-app.ts';

const app = clockedApp(Deno.env.toObject());
const server = Deno.serve(
  { hostname: '127.0.0.1', port: Number(Deno.env.get('PORT') ?? 0), onListen: ({ port }) => console.log(`listening on ${port}`) },
  (request) => app.fetch(request),
);
Deno.addSignalListener('SIGTERM', () => {
  void server.shutdown().then(() => app.close()).finally(() => Deno.exit(0));
});
