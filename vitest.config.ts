import { defineConfig } from 'vitest/config';

const realPostgres = Boolean(process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL);

// The HTTP suites, run again against real server processes on the real Postgres: the app under Node
// (@hono/node-server) and under Deno (Deno.serve), spoken to over HTTP.
const httpSuites = [
  'test/reservations.happy.test.ts',
  'test/reservations.error.test.ts',
  'test/security.test.ts',
  'test/limits.test.ts',
  'test/money.test.ts',
  'test/periods.test.ts',
];
// The reservation suites with the app's queries on the Neon driver, through a local WebSocket-to-TCP proxy.
const neonSuites = ['test/reservations.happy.test.ts', 'test/reservations.error.test.ts', 'test/money.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    // Most files wait on Postgres or on a server process, not on this one: on 2 cores, 3 files at a time.
    maxWorkers: 3,
    hookTimeout: 120_000,
    projects: [
      { extends: true as const, test: { name: 'in-process', include: ['test/**/*.test.ts'] } },
      ...(realPostgres
        ? [
            { extends: true as const, test: { name: 'node-server', include: httpSuites, env: { TEST_SERVER: 'node' } } },
            { extends: true as const, test: { name: 'deno-server', include: httpSuites, env: { TEST_SERVER: 'deno' } } },
            { extends: true as const, test: { name: 'neon-driver', include: neonSuites, env: { TEST_DRIVER: 'neon' } } },
          ]
        : []),
    ],
  },
});
