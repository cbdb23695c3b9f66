// Vercel, Node.js runtime: postgres.js over TCP, one small pool per instance, which serves many requests at once
// (Fluid compute) and lets its connections go after a few idle seconds. `npm run build:vercel` bundles this into
// dist/vercel/node.js, which api/node.js serves.
import { postgresDatabase } from '../../lib/db/postgres.ts';
import { postgresSettings } from '../../lib/db/postgres-settings.ts';
import { requireDatabaseUrl, serverlessHandler } from '../serverless.ts';

const handle = serverlessHandler({
  env: () => process.env,
  lifetime: 'instance',
  prefix: '/api/node',
  database: (env) => {
    const url = requireDatabaseUrl(env);
    const settings = postgresSettings(env, { max: 3, prepare: true, idleTimeout: 5 });
    return () => postgresDatabase(url, settings);
  },
});

/** Vercel's Web-standard handler shape for the Node.js runtime. */
export default { fetch: (request: Request) => handle(request) };
