// `npx spendgate`: operate a spendgate server from a shell. See README "CLI" for the commands and exit codes.
import { parseArgs } from 'node:util';
import { ConnectionError, createClient, SpendgateError, TimeoutError } from '../lib/client.ts';
import { commands, type Flags, type Output, UsageError } from './cli/commands.ts';

/** What the exit status means, for scripts. */
const exit = { ok: 0, apiError: 1, usage: 2, cannotConnect: 3 } as const;

const usage = `usage: spendgate COMMAND [--json] [--url URL]

commands:
${Object.values(commands).map((c) => `  ${c.usage}`).join('\n')}
  migrate      apply pending migrations to DATABASE_URL (or the embedded database)
  serve        run the server (as npm start)

environment: SPENDGATE_URL (default http://127.0.0.1:8787), SPENDGATE_ADMIN_TOKEN, SPENDGATE_SERVICE_TOKEN
  (the admin token is used when set; reads work with the service token)
--json prints the API's answer as JSON; otherwise a table.
exit status: 0 ok, 1 the API answered with an error, 2 usage error, 3 cannot connect, 4 audit found mismatches`;

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number | null> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        json: { type: 'boolean' }, url: { type: 'string' }, help: { type: 'boolean', short: 'h' }, kind: { type: 'string' },
        model: { type: 'string' }, 'max-budget': { type: 'string' }, 'soft-budget': { type: 'string' },
        'budget-duration': { type: 'string' }, rpm: { type: 'string' }, tpm: { type: 'string' }, 'max-parallel': { type: 'string' },
      },
    });
  } catch (error) {
    return usageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(usage);
    return exit.ok;
  }
  const [first = '', second = ''] = positionals;
  if (first === 'migrate' && positionals.length === 1) return runMigrate(env);
  if (first === 'serve' && positionals.length === 1) {
    await import('./node-server.ts');
    return null; // runs until signalled
  }
  const name = first in commands ? first : `${first} ${second}`;
  const command = commands[name];
  if (!command) return usageError(first ? `unknown command "${positionals.join(' ')}"` : 'give a command');

  const token = env.SPENDGATE_ADMIN_TOKEN || env.SPENDGATE_SERVICE_TOKEN;
  if (!token) return usageError('set SPENDGATE_ADMIN_TOKEN (or SPENDGATE_SERVICE_TOKEN for reads)');
  const client = createClient({ url: values.url ?? env.SPENDGATE_URL ?? 'http://127.0.0.1:8787', token });
  const args = positionals.slice(name.split(' ').length);
  let output: Output;
  try {
    output = await command.run({ args, flags: values as Flags, client });
  } catch (error) {
    if (error instanceof UsageError) return usageError(`${error.message}\nusage: spendgate ${command.usage}`);
    if (!(error instanceof SpendgateError)) throw error;
    report(error, values.json === true);
    return error instanceof ConnectionError || error instanceof TimeoutError ? exit.cannotConnect : exit.apiError;
  }
  console.log(values.json ? JSON.stringify(output.json, null, 2) : output.text);
  return output.exitCode ?? exit.ok;
}

function report(error: SpendgateError, json: boolean): void {
  if (json) {
    console.error(JSON.stringify({ error: { type: error.type, message: error.message, status: error.status, ...error.details } }, null, 2));
    return;
  }
  console.error(`spendgate: ${error.message}`);
  const issues = error.details.issues;
  if (Array.isArray(issues)) for (const issue of issues) console.error(`  ${issue.path || '(body)'}: ${issue.message}`);
}

function usageError(message: string): number {
  console.error(`spendgate: ${message}\n\n${usage}`);
  return exit.usage;
}

async function runMigrate(env: NodeJS.ProcessEnv): Promise<number> {
  // Loaded here: the database drivers take a while to load, and the other commands never need them.
  const [{ ConfigError, databaseSettings }, { DatabaseUnavailable }, { migrate }, { openDatabase }, { readMigrations }] =
    await Promise.all([
      import('../lib/config.ts'), import('../lib/db.ts'), import('../lib/migrate.ts'), import('./node/database.ts'),
      import('./node/migrations.ts'),
    ]);
  let settings;
  try {
    settings = databaseSettings(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`spendgate: ${error.message}`);
    return exit.usage;
  }
  const { db, description } = await openDatabase(env);
  try {
    const applied = await migrate(db, readMigrations(), settings);
    console.log(applied.length > 0 ? `applied ${applied.join(', ')} to ${description}` : `${description} is up to date`);
    return exit.ok;
  } catch (error) {
    console.error(`spendgate: cannot migrate ${description}: ${error instanceof Error ? error.message : String(error)}`);
    return error instanceof DatabaseUnavailable ? exit.cannotConnect : exit.apiError;
  } finally {
    await db.close().catch(() => {});
  }
}

const status = await main(process.argv.slice(2), process.env);
if (status !== null) process.exitCode = status;
