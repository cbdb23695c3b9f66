import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app-env.ts';
import { allow } from '../auth.ts';
import { errorResponses } from '../schemas.ts';
import { ModelEntry, ModelNameText } from './model-schemas.ts';

const ImportBody = z.record(z.string().max(256), z.unknown()).openapi('ModelImport', {
  description: "A whole model_prices_and_context_window.json: model names to entries.",
});

const Imported = z
  .object({
    imported: z.number(),
    skipped: z.array(z.object({ name: z.string(), reason: z.string() })),
  })
  .openapi('ModelImportResult');

export const route = createRoute({
  method: 'post',
  path: '/v1/models/import',
  summary: "Import LiteLLM's whole price file in one call",
  description:
    'Validates each entry; valid ones are written in one transaction, invalid ones are skipped and listed with the ' +
    'reason. The file\'s documentation entry (sample_spec) is skipped.',
  security: [{ bearer: [] }],
  middleware: [allow()] as const,
  request: { body: { content: { 'application/json': { schema: ImportBody } }, required: true } },
  responses: {
    200: { description: 'What was imported and what was skipped', content: { 'application/json': { schema: Imported } } },
    ...errorResponses(400, 401, 403, 503),
  },
});

export function register(app: App) {
  app.openapi(route, async (c) => {
    const valid: Record<string, Record<string, unknown>> = {};
    const skipped: Array<{ name: string; reason: string }> = [];
    for (const [name, entry] of Object.entries(c.req.valid('json'))) {
      if (name === 'sample_spec') {
        skipped.push({ name, reason: "LiteLLM's documentation of the format, not a model" });
        continue;
      }
      const badName = ModelNameText.safeParse(name);
      if (!badName.success) {
        skipped.push({ name, reason: `name: ${badName.error.issues.map((i) => i.message).join('; ')}` });
        continue;
      }
      const parsed = ModelEntry.safeParse(entry);
      if (parsed.success) valid[name] = parsed.data;
      else skipped.push({ name, reason: parsed.error.issues.map((i) => `${i.path.join('.') || 'entry'}: ${i.message}`).join('; ') });
    }
    const imported = await c.var.ledger.importModels(valid);
    return c.json({ imported, skipped }, 200);
  });
}
