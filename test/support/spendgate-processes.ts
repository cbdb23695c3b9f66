// The real entry point (`tsx functions/node-server.ts`) in child processes, for tests that need several instances,
// crashes or a database going away under a running server.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.ts';
import { tokens } from './harness.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsx = join(root, 'node_modules', '.bin', 'tsx');

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  base: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  isRunning(): boolean;
}

const running = new Set<ServerProcess>();
const started: ServerProcess[] = [];

/** Every server this test file started, running or not (to read what they printed). */
export function startedServers(): readonly ServerProcess[] {
  return started;
}

/** The test's environment without any spendgate setting, plus the harness's tokens and `extra`. */
function serverEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (['DATABASE_URL', 'TEST_DATABASE_URL', 'HOST', 'PORT', 'CRON_SECRET'].includes(name) || name.startsWith('SPENDGATE_')) continue;
    env[name] = value;
  }
  return {
    ...env,
    SPENDGATE_ADMIN_TOKEN: tokens.admin,
    SPENDGATE_SERVICE_TOKEN: tokens.service,
    CRON_SECRET: tokens.cron,
    ...extra,
  };
}

/** Starts a server on a free port with `env` (DATABASE_URL at least) and waits until /health answers 200. */
export async function startServer(extra: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  // Its own process group, so that tsx and the node it runs are killed together.
  const child = spawn(tsx, ['functions/node-server.ts'], {
    cwd: root,
    env: serverEnv({ PORT: String(port), HOST: '127.0.0.1', ...extra }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let alive = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      alive = false;
      resolve({ code, signal });
    });
  });
  const server: ServerProcess = { child, port, base: `http://127.0.0.1:${port}`, output: () => output, exited, isRunning: () => alive };
  running.add(server);
  started.push(server);
  void exited.then(() => running.delete(server));
  await ready(server);
  return server;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function ready(server: ServerProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (!server.isRunning()) throw new Error(`the server exited before it was ready:\n${server.output()}`);
    try {
      const res = await fetch(`${server.base}/health`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  killServer(server);
  throw new Error(`the server was not ready within 60 s:\n${server.output()}`);
}

/** SIGKILL to the whole process group: a crash, with no chance to finish anything. */
export function killServer(server: ServerProcess): void {
  try {
    process.kill(-server.child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** SIGTERM (a clean shutdown), then SIGKILL if it has not exited within 10 s. */
export async function stopServer(server: ServerProcess): Promise<void> {
  if (!server.isRunning()) return;
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => killServer(server), 10_000);
  await server.exited;
  clearTimeout(timer);
}

/** Stops every server still running (for afterAll). */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...running].map(stopServer));
}
