import { describe, it, expect } from 'vitest';
import { normalizeUsage, totalTokens, type NormalizedUsage, type UsageResult } from '../../lib/provider-usage.ts';

function usageOf(result: UsageResult): NormalizedUsage {
  if (!result.ok) throw new Error(`expected ok, got error at "${result.path}": ${result.message}`);
  return result.usage;
}

function errorPathOf(result: UsageResult): string {
  if (result.ok) throw new Error(`expected an error, got ${JSON.stringify(result.usage)}`);
  return result.path;
}

describe('normalizeUsage: OpenAI Chat Completions', () => {
  it('subtracts cached tokens from prompt tokens', () => {
    const usage = usageOf(
      normalizeUsage({
        prompt_tokens: 1000,
        completion_tokens: 200,
        total_tokens: 1200,
        prompt_tokens_details: { cached_tokens: 400 },
        completion_tokens_details: { reasoning_tokens: 50 },
      }),
    );
    expect(usage).toEqual({
      input_tokens: 600,
      cache_read_tokens: 400,
      cache_creation_tokens: 0,
      output_tokens: 200,
      reasoning_tokens: 50,
    });
    expect(totalTokens(usage)).toBe(1200);
  });

  it('reads missing details as 0', () => {
    expect(usageOf(normalizeUsage({ prompt_tokens: 10, completion_tokens: 3 }))).toEqual({
      input_tokens: 10,
      cache_read_tokens: 0,
      cache_creation_tokens: 0,
      output_tokens: 3,
      reasoning_tokens: 0,
    });
  });

  it('reads null details and null counts as absent', () => {
    const usage = usageOf(
      normalizeUsage({
        prompt_tokens: 10,
        completion_tokens: 3,
        prompt_tokens_details: null,
        completion_tokens_details: { reasoning_tokens: null },
      }),
    );
    expect(usage).toEqual({
      input_tokens: 10,
      cache_read_tokens: 0,
      cache_creation_tokens: 0,
      output_tokens: 3,
      reasoning_tokens: 0,
    });
  });

  it('reads an embeddings usage (no completion tokens)', () => {
    const usage = usageOf(normalizeUsage({ prompt_tokens: 8, total_tokens: 8 }));
    expect(usage.input_tokens).toBe(8);
    expect(usage.output_tokens).toBe(0);
    expect(totalTokens(usage)).toBe(8);
  });

  it('ignores total_tokens', () => {
    expect(totalTokens(usageOf(normalizeUsage({ prompt_tokens: 1, completion_tokens: 1, total_tokens: 999 })))).toBe(
      2,
    );
  });

  it('accepts cached tokens equal to prompt tokens', () => {
    const usage = usageOf(normalizeUsage({ prompt_tokens: 50, prompt_tokens_details: { cached_tokens: 50 } }));
    expect(usage.input_tokens).toBe(0);
    expect(usage.cache_read_tokens).toBe(50);
  });
});

describe('normalizeUsage: OpenAI Responses', () => {
  it('subtracts cached tokens from input tokens', () => {
    const usage = usageOf(
      normalizeUsage({
        input_tokens: 500,
        output_tokens: 300,
        total_tokens: 800,
        input_tokens_details: { cached_tokens: 100 },
        output_tokens_details: { reasoning_tokens: 200 },
      }),
    );
    expect(usage).toEqual({
      input_tokens: 400,
      cache_read_tokens: 100,
      cache_creation_tokens: 0,
      output_tokens: 300,
      reasoning_tokens: 200,
    });
    expect(totalTokens(usage)).toBe(800);
  });

  it('reads an image generation usage (details without cached tokens)', () => {
    const usage = usageOf(
      normalizeUsage({
        input_tokens: 50,
        output_tokens: 4160,
        input_tokens_details: { text_tokens: 50, image_tokens: 0 },
      }),
    );
    expect(usage).toEqual({
      input_tokens: 50,
      cache_read_tokens: 0,
      cache_creation_tokens: 0,
      output_tokens: 4160,
      reasoning_tokens: 0,
    });
  });
});

describe('normalizeUsage: Anthropic Messages', () => {
  it('keeps input tokens as they are, since they exclude both cache counts', () => {
    const usage = usageOf(
      normalizeUsage({
        input_tokens: 10,
        cache_read_input_tokens: 1000,
        cache_creation_input_tokens: 20,
        output_tokens: 5,
      }),
    );
    expect(usage).toEqual({
      input_tokens: 10,
      cache_read_tokens: 1000,
      cache_creation_tokens: 20,
      output_tokens: 5,
      reasoning_tokens: 0,
    });
    expect(totalTokens(usage)).toBe(1035);
  });

  it('reads null cache counts as 0', () => {
    const usage = usageOf(
      normalizeUsage({
        input_tokens: 7,
        output_tokens: 3,
        cache_read_input_tokens: null,
        cache_creation_input_tokens: null,
      }),
    );
    expect(usage).toEqual({
      input_tokens: 7,
      cache_read_tokens: 0,
      cache_creation_tokens: 0,
      output_tokens: 3,
      reasoning_tokens: 0,
    });
  });

  it('reads only cache_creation_input_tokens as Anthropic', () => {
    const usage = usageOf(normalizeUsage({ input_tokens: 4, cache_creation_input_tokens: 9, output_tokens: 1 }));
    expect(usage.input_tokens).toBe(4);
    expect(usage.cache_creation_tokens).toBe(9);
    expect(totalTokens(usage)).toBe(14);
  });
});

describe('normalizeUsage: only input_tokens and output_tokens', () => {
  it('reads them the same way whichever provider sent them', () => {
    expect(usageOf(normalizeUsage({ input_tokens: 12, output_tokens: 4 }))).toEqual({
      input_tokens: 12,
      cache_read_tokens: 0,
      cache_creation_tokens: 0,
      output_tokens: 4,
      reasoning_tokens: 0,
    });
  });

  it('accepts input_tokens alone', () => {
    expect(totalTokens(usageOf(normalizeUsage({ input_tokens: 12 })))).toBe(12);
  });
});

describe('normalizeUsage: Gemini usageMetadata', () => {
  const metadata = {
    promptTokenCount: 1000,
    candidatesTokenCount: 100,
    thoughtsTokenCount: 50,
    cachedContentTokenCount: 300,
    totalTokenCount: 1150,
  };
  const expected: NormalizedUsage = {
    input_tokens: 700,
    cache_read_tokens: 300,
    cache_creation_tokens: 0,
    output_tokens: 150,
    reasoning_tokens: 50,
  };

  it('subtracts cached tokens and bills thoughts as output', () => {
    const usage = usageOf(normalizeUsage(metadata));
    expect(usage).toEqual(expected);
    expect(totalTokens(usage)).toBe(1150);
  });

  it('reads the object under a usageMetadata key, ignoring its siblings', () => {
    expect(usageOf(normalizeUsage({ usageMetadata: metadata }))).toEqual(expected);
    expect(usageOf(normalizeUsage({ candidates: [], modelVersion: 'x', usageMetadata: metadata }))).toEqual(expected);
  });

  it('reads missing counts as 0', () => {
    expect(usageOf(normalizeUsage({ promptTokenCount: 9 }))).toEqual({
      input_tokens: 9,
      cache_read_tokens: 0,
      cache_creation_tokens: 0,
      output_tokens: 0,
      reasoning_tokens: 0,
    });
    expect(usageOf(normalizeUsage({ usageMetadata: { candidatesTokenCount: 2 } })).output_tokens).toBe(2);
  });

  it('ignores totalTokenCount', () => {
    expect(totalTokens(usageOf(normalizeUsage({ promptTokenCount: 3, totalTokenCount: 999 })))).toBe(3);
  });
});

describe('normalizeUsage: counts that are not non-negative safe integers', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['negative prompt_tokens', { prompt_tokens: -1, completion_tokens: 1 }, 'prompt_tokens'],
    ['fractional completion_tokens', { prompt_tokens: 1, completion_tokens: 1.5 }, 'completion_tokens'],
    ['string prompt_tokens', { prompt_tokens: '10' }, 'prompt_tokens'],
    ['unsafe prompt_tokens', { prompt_tokens: 2 ** 53 }, 'prompt_tokens'],
    [
      'string cached_tokens',
      { prompt_tokens: 10, prompt_tokens_details: { cached_tokens: 'x' } },
      'prompt_tokens_details.cached_tokens',
    ],
    [
      'negative reasoning_tokens',
      { completion_tokens: 10, completion_tokens_details: { reasoning_tokens: -2 } },
      'completion_tokens_details.reasoning_tokens',
    ],
    ['prompt_tokens_details not an object', { prompt_tokens: 10, prompt_tokens_details: 5 }, 'prompt_tokens_details'],
    [
      'completion_tokens_details an array',
      { completion_tokens: 10, completion_tokens_details: [] },
      'completion_tokens_details',
    ],
    ['negative Responses input_tokens', { input_tokens: -1, input_tokens_details: {} }, 'input_tokens'],
    ['boolean output_tokens', { input_tokens: 1, output_tokens: true }, 'output_tokens'],
    [
      'fractional Responses cached_tokens',
      { input_tokens: 10, input_tokens_details: { cached_tokens: 0.5 } },
      'input_tokens_details.cached_tokens',
    ],
    [
      'string Responses reasoning_tokens',
      { output_tokens: 10, output_tokens_details: { reasoning_tokens: '1' } },
      'output_tokens_details.reasoning_tokens',
    ],
    ['input_tokens_details not an object', { input_tokens: 10, input_tokens_details: 'x' }, 'input_tokens_details'],
    [
      'negative cache_read_input_tokens',
      { input_tokens: 1, cache_read_input_tokens: -1 },
      'cache_read_input_tokens',
    ],
    [
      'string cache_creation_input_tokens',
      { input_tokens: 1, cache_creation_input_tokens: 'a' },
      'cache_creation_input_tokens',
    ],
    ['fractional Anthropic input_tokens', { input_tokens: 1.5, cache_read_input_tokens: 0 }, 'input_tokens'],
    ['negative promptTokenCount', { promptTokenCount: -1 }, 'promptTokenCount'],
    ['string candidatesTokenCount', { promptTokenCount: 1, candidatesTokenCount: '5' }, 'candidatesTokenCount'],
    ['fractional thoughtsTokenCount', { thoughtsTokenCount: 1.2 }, 'thoughtsTokenCount'],
    ['negative cachedContentTokenCount', { promptTokenCount: 5, cachedContentTokenCount: -3 }, 'cachedContentTokenCount'],
    [
      'wrapped string promptTokenCount',
      { usageMetadata: { promptTokenCount: 'many' } },
      'usageMetadata.promptTokenCount',
    ],
  ];

  for (const [name, usage, path] of cases) {
    it(`rejects ${name} at ${path}`, () => {
      expect(errorPathOf(normalizeUsage(usage))).toBe(path);
    });
  }

  it('says in words what is wrong', () => {
    expect(normalizeUsage({ prompt_tokens: -1 })).toEqual({
      ok: false,
      path: 'prompt_tokens',
      message: 'prompt_tokens must be a non-negative whole number, got -1',
    });
  });
});

describe('normalizeUsage: parts larger than their whole', () => {
  it('rejects cached tokens above prompt tokens', () => {
    expect(normalizeUsage({ prompt_tokens: 10, prompt_tokens_details: { cached_tokens: 11 } })).toEqual({
      ok: false,
      path: 'prompt_tokens_details.cached_tokens',
      message: 'prompt_tokens_details.cached_tokens (11) is more than prompt_tokens (10), which includes it',
    });
  });

  it('rejects reasoning tokens above completion tokens', () => {
    const result = normalizeUsage({ completion_tokens: 5, completion_tokens_details: { reasoning_tokens: 6 } });
    expect(errorPathOf(result)).toBe('completion_tokens_details.reasoning_tokens');
  });

  it('rejects Responses cached tokens above input tokens', () => {
    const result = normalizeUsage({ input_tokens: 3, input_tokens_details: { cached_tokens: 4 } });
    expect(errorPathOf(result)).toBe('input_tokens_details.cached_tokens');
  });

  it('rejects Responses reasoning tokens above output tokens', () => {
    const result = normalizeUsage({ output_tokens: 3, output_tokens_details: { reasoning_tokens: 4 } });
    expect(errorPathOf(result)).toBe('output_tokens_details.reasoning_tokens');
  });

  it('rejects Gemini cached tokens above prompt tokens, plain and wrapped', () => {
    const metadata = { promptTokenCount: 3, cachedContentTokenCount: 5 };
    expect(errorPathOf(normalizeUsage(metadata))).toBe('cachedContentTokenCount');
    expect(normalizeUsage({ usageMetadata: metadata })).toEqual({
      ok: false,
      path: 'usageMetadata.cachedContentTokenCount',
      message:
        'usageMetadata.cachedContentTokenCount (5) is more than usageMetadata.promptTokenCount (3), which includes it',
    });
  });

  it('does not compare Anthropic cache counts with input tokens, which exclude them', () => {
    expect(usageOf(normalizeUsage({ input_tokens: 1, cache_read_input_tokens: 500 })).cache_read_tokens).toBe(500);
  });
});

describe('normalizeUsage: unrecognised and mixed objects', () => {
  it('rejects an object with none of the recognised fields, listing what is accepted', () => {
    for (const usage of [{}, { total_tokens: 5 }, { totalTokenCount: 5 }, { prompt_tokens: null }]) {
      const result = normalizeUsage(usage);
      expect(errorPathOf(result)).toBe('');
      if (result.ok) continue;
      expect(result.message).toContain('prompt_tokens');
      expect(result.message).toContain('input_tokens');
      expect(result.message).toContain('cache_read_input_tokens');
      expect(result.message).toContain('promptTokenCount');
    }
  });

  it('rejects a usageMetadata that is not an object', () => {
    expect(errorPathOf(normalizeUsage({ usageMetadata: 'x' }))).toBe('usageMetadata');
    expect(errorPathOf(normalizeUsage({ usageMetadata: [] }))).toBe('usageMetadata');
  });

  it('rejects fields of two formats together', () => {
    const mixes: Array<Record<string, unknown>> = [
      { prompt_tokens: 5, input_tokens: 3 },
      { prompt_tokens: 5, cache_read_input_tokens: 3 },
      { input_tokens: 5, input_tokens_details: {}, cache_creation_input_tokens: 1 },
      { promptTokenCount: 5, completion_tokens: 1 },
      { promptTokenCount: 5, output_tokens: 1 },
    ];
    for (const usage of mixes) {
      expect(errorPathOf(normalizeUsage(usage))).toBe('');
    }
    const result = normalizeUsage({ prompt_tokens: 5, input_tokens: 3 });
    expect(result).toEqual({
      ok: false,
      path: '',
      message: "usage mixes fields of different providers' formats (prompt_tokens, input_tokens); it must follow one format",
    });
  });

  it('rejects counts whose sum is not a safe integer', () => {
    const max = Number.MAX_SAFE_INTEGER;
    expect(errorPathOf(normalizeUsage({ prompt_tokens: max, completion_tokens: max }))).toBe('');
  });
});

describe('totalTokens', () => {
  it('adds every input, cached or not, and every output, counting reasoning once', () => {
    expect(
      totalTokens({
        input_tokens: 1,
        cache_read_tokens: 20,
        cache_creation_tokens: 300,
        output_tokens: 4000,
        reasoning_tokens: 3000,
      }),
    ).toBe(4321);
  });
});
