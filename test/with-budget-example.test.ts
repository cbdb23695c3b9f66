// examples/with-budget-openai.ts runs as a user would run it, with nothing configured: it starts the fake model
// server and spendgate in process itself, and what it prints must add up.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('examples/with-budget-openai.ts', () => {
  it('prints the hold, the usage and the charge of a plain and a streamed call', async () => {
    const env: NodeJS.ProcessEnv = {};
    for (const [name, value] of Object.entries(process.env)) {
      if (!name.startsWith('SPENDGATE_') && !name.startsWith('OPENAI_') && name !== 'DATABASE_URL') env[name] = value;
    }
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(join(root, 'node_modules', '.bin', 'tsx'), ['examples/with-budget-openai.ts'], { cwd: root, env, timeout: 120_000 },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }));
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    // gpt-4o from the starter price table: 9 input tokens (4 framing + 2 o200k tokens + 3) × 0.0000025 + 64 × 0.00001 held;
    // the fake server's 12 input × 0.0000025 + 6 output × 0.00001 charged.
    expect(stdout).toMatch(/^hold: 0\.0006625 for 9 input \+ 64 output tokens \(reservation [0-9a-f-]{36}\)$/m);
    expect(stdout).toMatch(/^usage: \{"prompt_tokens":12,"completion_tokens":6,/m);
    expect(stdout.match(/^charge: 0\.000090 \(from usage; 0\.0005725 of the hold returned\)$/gm)).toHaveLength(2);
    expect(stdout.match(/^answer: Hello from the fake model\.$/gm)).toHaveLength(2);
    expect(stdout).toMatch(/^team example-team: spend 0\.000180, reserved 0\.000000$/m);
  });
});
