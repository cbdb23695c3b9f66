// Supabase Edge Functions (Deno): the app at https://<project-ref>.supabase.co/functions/v1/spendgate/..., on
// postgres.js through Supavisor's transaction pooler. Functions reach it as /spendgate/...; the prefix comes off
// before routing. An instance serves many requests: it keeps one small pool, without named prepared statements
// (a transaction pooler hands each statement to any server connection) unless SPENDGATE_PREPARE says otherwise.
import { postgresDatabase } from '../../../lib/db/postgres.ts';
import { postgresSettings } from '../../../lib/db/postgres-settings.ts';
import { requireDatabaseUrl, serverlessHandler } from '../../../functions/serverless.ts';

const handler = serverlessHandler({
  env: () => Deno.env.toObject(),
  lifetime: 'instance',
  prefix: '/spendgate',
  database: (env) => {
    const url = requireDatabaseUrl(env);
    const settings = postgresSettings(env, { max: 3, prepare: false, idleTimeout: 5 });
    return () => postgresDatabase(url, settings);
  },
});

Deno.serve((request) => handler(request));
