// Bad input on every route, the routes read from the app's own OpenAPI document so that a new route is fuzzed too:
// random JSON and random path and query values, hostile values in each field of a valid body (wrong types, huge and
// tiny numbers, 1e999, NaN-like strings, negative amounts, U+0000), 10 MB bodies and bodies nested 10 000 levels
// deep. Never a 5xx, never a change to the ledger, and every 400 is `invalid_request` with the issues named; a
// hostile value in a field is named by that field's path.
import { fc, it } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { backends } from './support/databases.ts';
import { type Harness, type Reply, startHarness, uniqueId } from './support/harness.ts';
import { ledgerFingerprint } from './support/ledger-snapshot.ts';

interface Route {
  method: string;
  template: string;
  hasBody: boolean;
}

/** A request body: JSON to serialize, or raw text sent as it is (for 1e999, deep nesting, broken JSON). */
type Body = { json: unknown } | { raw: string };

const unknownId = '00000000-0000-4000-8000-000000000000';

describe.each(backends)('bad input on every route (%s)', (backend) => {
  let h: Harness;
  let routes: Route[] = [];
  let heldId = '';
  const tally: Record<string, number> = {};
  let requests = 0;

  beforeAll(async () => {
    h = await startHarness(backend);
    const doc = (await h.as('anonymous')('GET', '/openapi.json')).body;
    for (const [template, item] of Object.entries(doc.paths as Record<string, Record<string, { requestBody?: unknown }>>)) {
      for (const [method, operation] of Object.entries(item)) {
        if (['get', 'put', 'post', 'delete', 'patch'].includes(method)) routes.push({ method: method.toUpperCase(), template, hasBody: operation.requestBody !== undefined });
      }
    }
    routes = routes.sort((a, b) => `${a.template} ${a.method}`.localeCompare(`${b.template} ${b.method}`));
    // Some state the bad input must leave alone: a live hold on a limited scope.
    expect((await h.admin('PUT', '/v1/limits/team/fuzz-team', { max_budget: '10', rpm: 100 })).status).toBe(200);
    const held = await h.service('POST', '/v1/reservations', { scopes: { team: 'fuzz-team' }, estimate: { cost: '1' }, ttl_seconds: 86_400 });
    expect(held.status).toBe(201);
    heldId = held.body.id;
  });

  afterAll(async () => {
    console.log(`fuzz (${backend}): ${routes.length} routes, ${requests} bad requests, answers ${JSON.stringify(tally)}; 5xx: 0, ledger changes: 0`);
    await h?.close();
  });

  /** A concrete path for a route: ids that do not exist (so a body that happens to be valid changes nothing). */
  const pathOf = (route: Route, id = unknownId) =>
    route.template.replace('{id}', route.template.startsWith('/v1/limits') ? uniqueId('fuzz') : id).replace('{kind}', 'team').replace('{name}', uniqueId('fuzz-model'));

  const send = async (route: Route, path: string, body: Body | undefined, contentType = 'application/json'): Promise<Reply> => {
    const text = body === undefined ? undefined : 'raw' in body ? body.raw : JSON.stringify(body.json);
    const reply = await h.admin(route.method, path, text, text === undefined ? {} : { 'content-type': contentType });
    requests += 1;
    tally[reply.status] = (tally[reply.status] ?? 0) + 1;
    return reply;
  };

  /** What any answer to bad input must be: no 5xx, and a 400 that names its issues. */
  const expectSound = (what: string, reply: Reply) => {
    expect(reply.status, `${what}: ${JSON.stringify(reply.body).slice(0, 400)}`).toBeLessThan(500);
    if (reply.status === 400) {
      expect(reply.body.error.type, what).toBe('invalid_request');
      expect(reply.body.error.issues.length, what).toBeGreaterThan(0);
      for (const issue of reply.body.error.issues) {
        expect(typeof issue.path, what).toBe('string');
        expect(issue.message.length, what).toBeGreaterThan(0);
      }
    }
  };

  const jsonBody: fc.Arbitrary<Body> = fc.oneof(
    fc.jsonValue().map((json) => ({ json })),
    fc.dictionary(fc.constantFrom('scopes', 'estimate', 'cost', 'usage', 'ttl_seconds', 'model', 'max_budget', 'rpm', 'windows', 'models', 'idempotency_key', 'request'), fc.jsonValue(), { maxKeys: 4 }).map((json) => ({ json })),
    fc.string({ unit: 'binary', maxLength: 64 }).map((raw) => ({ raw })),
  );
  const pathValue = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('', '%00', '%ZZ', '..', '%2F..%2F', "'; drop table spendgate.reservations; --", '9'.repeat(400), 'NaN', '-1'));

  it.prop([fc.nat(), jsonBody, fc.constantFrom('application/json', 'application/json', 'text/plain', 'application/x-www-form-urlencoded')], { numRuns: Number(process.env.FUZZ_RUNS ?? 300) })(
    'random JSON on every route: no 5xx, 400s name their issues, the ledger unchanged',
    async (pick, body, contentType) => {
      const route = routes[pick % routes.length]!;
      const before = await ledgerFingerprint(h.db);
      const reply = await send(route, pathOf(route), route.hasBody ? body : undefined, contentType);
      expectSound(`${route.method} ${route.template}`, reply);
      expect(await ledgerFingerprint(h.db)).toBe(before);
    },
  );

  it.prop([fc.nat(), pathValue, fc.dictionary(fc.constantFrom('kind', 'id', 'type', 'cursor', 'limit'), pathValue, { maxKeys: 3 })], { numRuns: Number(process.env.FUZZ_RUNS ?? 300) })(
    'random path segments and query values on every route: no 5xx, the ledger unchanged',
    async (pick, value, query) => {
      const route = routes[pick % routes.length]!;
      const before = await ledgerFingerprint(h.db);
      const segment = encodeURIComponent(value).replaceAll('%25', '%');
      const path = route.template.replace('{id}', segment).replace('{kind}', segment).replace('{name}', segment);
      const search = new URLSearchParams(query).toString();
      // A body only where one is expected, and one that is valid for none: the path and query are what is tested.
      const reply = await send(route, search ? `${path}?${search}` : path, route.hasBody ? { json: { '': 0 } } : undefined);
      expectSound(`${route.method} ${path}`, reply);
      expect(await ledgerFingerprint(h.db)).toBe(before);
    },
  );

  describe('hostile values in each field of a valid body', () => {
    const amounts = ['-1', '-0.01', '"-0.000001"', '"NaN"', '"Infinity"', '"-Infinity"', '1e999', '-1e999', '1e-999', '"1e999"', '"0x10"', '""', '" 1"', '"1,5"', '{}', '[]', 'true', '"12345678901234567890"'];
    const integers = ['-1', '1.5', '"5"', '1e999', '"NaN"', '{}', '[]', 'true', '9007199254740993', '-0.0001'];
    const texts = ['""', `"${'x'.repeat(257)}"`, '5', '{}', '[]', 'true', '"a\\u0000b"', '"\\ud800"'];
    const objects = ['5', '"text"', '[]', 'true', '[{}]'];
    const cases: Array<{ method: string; path: () => string; base: Record<string, unknown>; fields: Record<string, string[]> }> = [
      {
        method: 'POST',
        path: () => '/v1/reservations',
        base: { scopes: { team: 'fuzz-team', key: 'fuzz-key' }, estimate: { cost: '0.01', tokens: 5 }, ttl_seconds: 60, idempotency_key: 'fuzz-idem', model: 'gpt-4o', request: { max_tokens: 5, messages: [] } },
        fields: {
          scopes: [...objects, '{}', '{"team": []}'], 'scopes.team': texts, estimate: objects, 'estimate.cost': amounts, 'estimate.tokens': integers,
          ttl_seconds: [...integers, '0', '86401'], idempotency_key: texts, model: [...texts, '"@window"'], request: objects, 'request.max_tokens': [...integers, '0'],
        },
      },
      {
        method: 'POST',
        path: () => '/v1/reservations/check',
        base: { scopes: { team: 'fuzz-team' }, estimate: { cost: '0.01' } },
        fields: { 'estimate.cost': amounts, 'scopes.team': texts },
      },
      {
        method: 'POST',
        path: () => `/v1/reservations/${heldId}/settle`,
        base: { cost: '0.5', usage: { prompt_tokens: 1, completion_tokens: 2 }, images: 0 },
        fields: { cost: amounts, images: integers, usage: objects, 'usage.prompt_tokens': integers },
      },
      { method: 'POST', path: () => `/v1/reservations/${heldId}/extend`, base: { ttl_seconds: 60 }, fields: { ttl_seconds: [...integers, '0', '86401', 'null'] } },
      {
        method: 'PUT',
        path: () => `/v1/limits/team/${uniqueId('fuzz')}`,
        base: { max_budget: '10', rpm: 5, tpm: 100, max_parallel: 2, budget_duration: '1h', windows: [{ max_budget: '1', budget_duration: '24h' }] },
        fields: {
          max_budget: amounts, rpm: integers, tpm: integers, max_parallel: integers, budget_duration: [...texts, '"2h"', '"1H"'],
          windows: [...objects.filter((o) => o !== '[]'), '[5]'], 'windows.0.max_budget': amounts, 'windows.0.budget_duration': ['"2h"', 'null', '5'],
        },
      },
      {
        method: 'PUT',
        path: () => `/v1/models/${uniqueId('fuzz-model')}`,
        base: { mode: 'chat', input_cost_per_token: '0.000001', max_output_tokens: 100 },
        fields: { input_cost_per_token: amounts.filter((a) => !['{}', '[]', 'true'].includes(a)), max_output_tokens: integers, mode: texts.filter((t) => t !== '""') },
      },
    ];

    it('every hostile value answers 400 naming its field, and writes nothing', async () => {
      const before = await ledgerFingerprint(h.db);
      let checked = 0;
      for (const c of cases) {
        for (const [field, values] of Object.entries(c.fields)) {
          for (const value of values) {
            const raw = JSON.stringify(withField(c.base, field.split('.'), '__HOSTILE__')).replace('"__HOSTILE__"', value);
            const reply = await send({ method: c.method, template: c.path(), hasBody: true }, c.path(), { raw });
            const what = `${c.method} ${c.path()} with ${field} = ${value.slice(0, 40)}`;
            expectSound(what, reply);
            expect(reply.status, `${what}: ${JSON.stringify(reply.body).slice(0, 300)}`).toBe(400);
            const paths: string[] = reply.body.error.issues.map((i: { path: string }) => i.path);
            expect(paths.some((p) => p === field || p.startsWith(`${field}.`)), `${what} named ${JSON.stringify(paths)}`).toBe(true);
            checked += 1;
          }
        }
      }
      expect(checked).toBeGreaterThan(150);
      expect(await ledgerFingerprint(h.db)).toBe(before);
    });
  });

  it('10 MB bodies, and bodies nested 10 000 levels deep, on every route with a body: 400, nothing written', async () => {
    const before = await ledgerFingerprint(h.db);
    const tenMegabytes = 'x'.repeat(10 * 1024 * 1024);
    const bodies: Array<[string, Body]> = [
      ['10 MB of JSON', { raw: JSON.stringify([tenMegabytes]) }],
      ['10 MB that is not JSON', { raw: tenMegabytes }],
      ['an array 10 000 deep', { raw: '['.repeat(10_000) + ']'.repeat(10_000) }],
      ['an object 10 000 deep', { raw: '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000) }],
      ['a field 10 000 deep', { raw: `{"scopes":{"team":"fuzz-team"},"estimate":{"cost":"0.1"},"request":{"messages":${'['.repeat(10_000)}${']'.repeat(10_000)}},"usage":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}` }],
    ];
    for (const route of routes.filter((r) => r.hasBody)) {
      for (const [what, body] of bodies) {
        const path = pathOf(route, heldId);
        const reply = await send(route, path, body);
        expectSound(`${route.method} ${route.template} with ${what}`, reply);
        expect(reply.status, `${route.method} ${route.template} with ${what}`).toBe(400);
      }
    }
    expect(await ledgerFingerprint(h.db)).toBe(before);
  });

  it('scope ids in any script, or that look like SQL, are kept exactly as written', async () => {
    const ids = ["'; drop table spendgate.reservations; --", "Robert'); DROP TABLE counters;--", '$1', '%00', 'a\\b"c', 'ünïcødé', '团队', '🙂🙃', ' spaced ', 'x'.repeat(256)];
    for (const id of ids) {
      const held = await h.service('POST', '/v1/reservations', { scopes: { team: id }, estimate: { cost: '0.01' } });
      expect(held.status, id).toBe(201);
      expect(held.body.scopes).toMatchObject([{ kind: 'team', id }]);
      const read = await h.service('GET', `/v1/limits/team/${encodeURIComponent(id)}`);
      expect(read.status, id).toBe(200);
      expect(read.body).toMatchObject({ kind: 'team', id, reserved: '0.010000', in_flight: 1 });
      expect((await h.service('POST', `/v1/reservations/${held.body.id}/release`)).status).toBe(200);
    }
    await h.expectAuditOk();
  });
});

/** `base` with the value at `path` replaced (objects copied, never changed in place). */
function withField(base: unknown, path: string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  const copy: Record<string, unknown> | unknown[] = Array.isArray(base) ? [...base] : { ...(base as Record<string, unknown>) };
  (copy as Record<string, unknown>)[head!] = withField((base as Record<string, unknown>)[head!], rest, value);
  return copy;
}
