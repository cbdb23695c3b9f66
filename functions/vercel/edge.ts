// Vercel, Edge runtime: no TCP, so Postgres is reached with @neondatabase/serverless over a WebSocket. A WebSocket
// may not outlive the request that opened it there, so each request gets its own one-connection pool, closed (via
// waitUntil) once the answer is out. `npm run build:vercel` bundles this into dist/vercel/edge.js, which api/edge.js
// serves.
import { neonDatabase } from '../../lib/db/neon.ts';
import { type InvocationContext, requireDatabaseUrl, serverlessHandler } from '../serverless.ts';

const handle = serverlessHandler({
  env: () => process.env,
  lifetime: 'request',
  prefix: '/api/edge',
  database: (env) => {
    const url = requireDatabaseUrl(env);
    return () => neonDatabase(url, { max: 1 });
  },
});

/** An Edge function: the Request, and a context whose waitUntil outlives the response. */
export default (request: Request, context?: InvocationContext) => handle(request, context);
