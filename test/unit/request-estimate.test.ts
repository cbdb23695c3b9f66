import { describe, it, expect } from 'vitest';
import { estimateRequest } from '../../lib/request-estimate.ts';

// Without a tokenizer every text counts one token per UTF-8 byte (test/unit/tokenizer.test.ts has the rest).
// Framing used throughout: 4 tokens per message, 3 for the reply priming, 12 once when tools are defined.

describe('estimateRequest: chat messages', () => {
  it('counts one user message as framing + text bytes + priming', () => {
    expect(estimateRequest({ messages: [{ role: 'user', content: 'hi' }] })).toEqual({
      input_tokens: 4 + 2 + 3,
      input_counter: 'utf8_bytes',
      unsized_parts: 0,
      max_output_tokens: null,
      n: 1,
      size: null,
      characters: 0,
    });
  });

  it('counts UTF-8 bytes, not characters', () => {
    // 'héllo': é is 2 bytes → 6; '日本' is 3 + 3 → 6; '😀' is 4 bytes.
    expect(estimateRequest({ messages: [{ role: 'user', content: 'héllo' }] }).input_tokens).toBe(4 + 6 + 3);
    expect(estimateRequest({ messages: [{ role: 'user', content: '日本' }] }).input_tokens).toBe(4 + 6 + 3);
    expect(estimateRequest({ messages: [{ role: 'user', content: '😀' }] }).input_tokens).toBe(4 + 4 + 3);
  });

  it('adds framing for every message and priming once', () => {
    const request = {
      messages: [
        { role: 'system', content: 'abc' },
        { role: 'user', content: 'de' },
      ],
    };
    expect(estimateRequest(request).input_tokens).toBe(4 + 3 + 4 + 2 + 3);
  });

  it('counts nothing for an empty or missing messages array', () => {
    expect(estimateRequest({ messages: [] }).input_tokens).toBe(0);
    expect(estimateRequest({}).input_tokens).toBe(0);
  });

  it('does not count the role beyond the framing', () => {
    const short = estimateRequest({ messages: [{ role: 'user', content: 'x' }] }).input_tokens;
    const long = estimateRequest({ messages: [{ role: 'a-very-long-role-name', content: 'x' }] }).input_tokens;
    expect(short).toBe(4 + 1 + 3);
    expect(long).toBe(4 + 1 + 3);
  });

  it('counts text parts by their text bytes', () => {
    const request = {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'hello' },
            { type: 'text', text: 'héllo' },
          ],
        },
      ],
    };
    expect(estimateRequest(request).input_tokens).toBe(4 + 5 + 6 + 3);
  });

  it('counts an image_url part as one unsized part and no tokens', () => {
    const request = {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'what is this?' },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
          ],
        },
      ],
    };
    const estimate = estimateRequest(request);
    expect(estimate.input_tokens).toBe(4 + 13 + 3);
    expect(estimate.unsized_parts).toBe(1);
  });

  it('counts every media part type as unsized', () => {
    const types = ['image_url', 'input_image', 'image', 'input_audio', 'audio', 'file', 'input_file', 'document'];
    const content = types.map((type) => ({ type, data: 'a long payload that must not be counted as text' }));
    const estimate = estimateRequest({ messages: [{ role: 'user', content }] });
    expect(estimate.unsized_parts).toBe(8);
    expect(estimate.input_tokens).toBe(4 + 3);
  });

  it('sums unsized parts across messages', () => {
    const request = {
      messages: [
        { role: 'user', content: [{ type: 'image', source: {} }] },
        { role: 'user', content: [{ type: 'input_audio', input_audio: {} }, { type: 'file', file: {} }] },
      ],
    };
    expect(estimateRequest(request).unsized_parts).toBe(3);
  });

  it('counts other parts by the bytes of their JSON', () => {
    // {"type":"x","v":1} is 18 bytes.
    expect(estimateRequest({ messages: [{ role: 'user', content: [{ type: 'x', v: 1 }] }] }).input_tokens).toBe(
      4 + 18 + 3,
    );
    // {"type":"tool_use","id":"t","name":"f","input":{}} is 50 bytes.
    const toolUse = { type: 'tool_use', id: 't', name: 'f', input: {} };
    expect(estimateRequest({ messages: [{ role: 'assistant', content: [toolUse] }] }).input_tokens).toBe(4 + 50 + 3);
  });

  it('counts a text part whose text is not a string by its JSON', () => {
    // {"type":"text","text":5} is 24 bytes.
    expect(estimateRequest({ messages: [{ role: 'user', content: [{ type: 'text', text: 5 }] }] }).input_tokens).toBe(
      4 + 24 + 3,
    );
  });

  it('counts name bytes', () => {
    expect(estimateRequest({ messages: [{ role: 'user', name: 'bob', content: 'hi' }] }).input_tokens).toBe(
      4 + 3 + 2 + 3,
    );
  });

  it('counts tool_calls by their JSON and a null content as nothing', () => {
    // [{"id":"a"}] is 12 bytes.
    const request = { messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'a' }] }] };
    expect(estimateRequest(request).input_tokens).toBe(4 + 12 + 3);
  });

  it('counts function_call by its JSON', () => {
    // {"name":"f"} is 12 bytes.
    const request = { messages: [{ role: 'assistant', content: null, function_call: { name: 'f' } }] };
    expect(estimateRequest(request).input_tokens).toBe(4 + 12 + 3);
  });

  it('counts tool_call_id bytes', () => {
    const request = { messages: [{ role: 'tool', tool_call_id: 'call_1', content: 'ok' }] };
    expect(estimateRequest(request).input_tokens).toBe(4 + 6 + 2 + 3);
  });
});

describe('estimateRequest: system, tools and schemas', () => {
  it('counts a string system prompt by its bytes', () => {
    expect(estimateRequest({ system: 'be brief' }).input_tokens).toBe(8);
  });

  it('counts an array system prompt like content parts', () => {
    const request = {
      system: [
        { type: 'text', text: 'abc' },
        { type: 'text', text: 'de' },
      ],
      messages: [{ role: 'user', content: 'hi' }],
    };
    expect(estimateRequest(request).input_tokens).toBe(3 + 2 + (4 + 2 + 3));
  });

  it('counts unsized and other parts in an array system prompt', () => {
    // {"type":"x","v":1} is 18 bytes.
    const estimate = estimateRequest({ system: [{ type: 'document', source: {} }, { type: 'x', v: 1 }] });
    expect(estimate.unsized_parts).toBe(1);
    expect(estimate.input_tokens).toBe(18);
  });

  it('counts tools, functions, tool_choice and response_format by their JSON', () => {
    // [{"name":"f"}] 14, [] 2, "auto" 6, {"type":"json_object"} 22; + 12 once when tools or functions define any.
    expect(estimateRequest({ tools: [{ name: 'f' }] }).input_tokens).toBe(14 + 12);
    expect(estimateRequest({ functions: [{ name: 'f' }] }).input_tokens).toBe(14 + 12);
    expect(estimateRequest({ functions: [] }).input_tokens).toBe(2);
    expect(estimateRequest({ tool_choice: 'auto' }).input_tokens).toBe(6);
    expect(estimateRequest({ response_format: { type: 'json_object' } }).input_tokens).toBe(22);
    expect(
      estimateRequest({
        tools: [{ name: 'f' }],
        functions: [],
        tool_choice: 'auto',
        response_format: { type: 'json_object' },
      }).input_tokens,
    ).toBe(14 + 2 + 6 + 22 + 12);
  });

  it('adds the tool-definitions framing once, however many tools and fields define them', () => {
    // [{"name":"f"},{"name":"g"}] 27, [{"name":"h"}] 14.
    expect(estimateRequest({ tools: [{ name: 'f' }, { name: 'g' }], functions: [{ name: 'h' }] }).input_tokens).toBe(
      27 + 14 + 12,
    );
    // Not an array of definitions: counted as JSON, no framing. {"name":"f"} is 12 bytes.
    expect(estimateRequest({ tools: { name: 'f' } }).input_tokens).toBe(12);
  });

  it('counts Responses API instructions by their bytes', () => {
    expect(estimateRequest({ instructions: 'héllo', input: 'hi' }).input_tokens).toBe(6 + 2);
  });

  it('adds up a whole Anthropic request', () => {
    const request = {
      model: 'claude',
      max_tokens: 1024,
      system: 'sys',
      tools: [{ name: 'f' }],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image', source: {} }] },
        { role: 'assistant', content: 'ok' },
      ],
    };
    expect(estimateRequest(request)).toEqual({
      input_tokens: 3 + (14 + 12) + (4 + 4) + (4 + 2) + 3,
      input_counter: 'utf8_bytes',
      unsized_parts: 1,
      max_output_tokens: 1024,
      n: 1,
      size: null,
      characters: 0,
    });
  });
});

describe('estimateRequest: completion prompt', () => {
  it('counts a string prompt by its bytes', () => {
    expect(estimateRequest({ prompt: 'héllo' }).input_tokens).toBe(6);
  });

  it('sums an array of strings', () => {
    expect(estimateRequest({ prompt: ['ab', 'c', 'é'] }).input_tokens).toBe(2 + 1 + 2);
  });

  it('counts token ids one each', () => {
    expect(estimateRequest({ prompt: [101, 2023, 3] }).input_tokens).toBe(3);
  });

  it('sums the lengths of token id arrays', () => {
    expect(
      estimateRequest({
        prompt: [
          [1, 2],
          [3, 4, 5],
        ],
      }).input_tokens,
    ).toBe(5);
  });

  it('ignores prompts of other shapes', () => {
    expect(estimateRequest({ prompt: 42 }).input_tokens).toBe(0);
    expect(estimateRequest({ prompt: { text: 'hi' } }).input_tokens).toBe(0);
  });
});

describe('estimateRequest: input (embeddings and Responses API)', () => {
  it('counts a string input by its bytes', () => {
    expect(estimateRequest({ input: 'héllo' }).input_tokens).toBe(6);
  });

  it('sums an array of strings', () => {
    expect(estimateRequest({ input: ['a', 'bc'] }).input_tokens).toBe(3);
  });

  it('counts token ids one each', () => {
    expect(estimateRequest({ input: [7, 8] }).input_tokens).toBe(2);
  });

  it('sums the lengths of token id arrays', () => {
    expect(estimateRequest({ input: [[1, 2, 3], [4]] }).input_tokens).toBe(4);
  });

  it('treats message-like items like messages', () => {
    expect(estimateRequest({ input: [{ role: 'user', content: 'hi' }] }).input_tokens).toBe(4 + 2 + 3);
    const request = {
      input: [
        { type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'https://x' }] },
        { role: 'assistant', content: 'ok' },
      ],
    };
    const estimate = estimateRequest(request);
    expect(estimate.input_tokens).toBe(4 + (4 + 2) + 3);
    expect(estimate.unsized_parts).toBe(1);
  });

  it('counts Responses items that are not messages by their JSON', () => {
    // {"type":"function_call_output","call_id":"c","output":"42"} is 59 bytes.
    const request = {
      input: [
        { role: 'user', content: 'hi' },
        { type: 'function_call_output', call_id: 'c', output: '42' },
      ],
    };
    expect(estimateRequest(request).input_tokens).toBe(4 + 2 + (4 + 59) + 3);
  });

  it('ignores inputs of other shapes', () => {
    expect(estimateRequest({ input: 5 }).input_tokens).toBe(0);
    expect(estimateRequest({ input: { text: 'hi' } }).input_tokens).toBe(0);
  });
});

describe('estimateRequest: output limits, n and size', () => {
  it('takes the largest of the output limits', () => {
    expect(estimateRequest({ max_tokens: 256, max_completion_tokens: 512 }).max_output_tokens).toBe(512);
    expect(estimateRequest({ max_output_tokens: 700, max_tokens: 100 }).max_output_tokens).toBe(700);
    expect(estimateRequest({ max_completion_tokens: 64 }).max_output_tokens).toBe(64);
  });

  it('is null when no output limit is given', () => {
    expect(estimateRequest({ messages: [] }).max_output_tokens).toBeNull();
  });

  it('ignores output limits that are not positive safe integers', () => {
    for (const bad of [0, -1, 1.5, '100', null, 2 ** 53, Number.NaN, Infinity]) {
      expect(estimateRequest({ max_tokens: bad }).max_output_tokens).toBeNull();
    }
    expect(estimateRequest({ max_tokens: '1000', max_output_tokens: 300 }).max_output_tokens).toBe(300);
  });

  it('takes the larger of n and best_of', () => {
    expect(estimateRequest({ n: 3, best_of: 5 }).n).toBe(5);
    expect(estimateRequest({ n: 4, best_of: 2 }).n).toBe(4);
    expect(estimateRequest({ n: 2 }).n).toBe(2);
    expect(estimateRequest({ best_of: 3 }).n).toBe(3);
  });

  it('is 1 when neither n nor best_of is a positive safe integer', () => {
    expect(estimateRequest({}).n).toBe(1);
    expect(estimateRequest({ n: 0 }).n).toBe(1);
    expect(estimateRequest({ n: -2, best_of: 1.5 }).n).toBe(1);
    expect(estimateRequest({ n: '3' }).n).toBe(1);
  });

  it('keeps a WIDTHxHEIGHT size and drops anything else', () => {
    expect(estimateRequest({ size: '1024x1024' }).size).toBe('1024x1024');
    expect(estimateRequest({ size: '1792x1024' }).size).toBe('1792x1024');
    for (const bad of ['auto', '1024', '1024X1024', ' 1024x1024', '1024x1024px', 1024, null]) {
      expect(estimateRequest({ size: bad }).size).toBeNull();
    }
  });

  it('reads an image generation request', () => {
    expect(estimateRequest({ prompt: 'a cat', size: '512x512', n: 2 })).toEqual({
      input_tokens: 5,
      input_counter: 'utf8_bytes',
      unsized_parts: 0,
      max_output_tokens: null,
      n: 2,
      size: '512x512',
      characters: 0,
    });
  });
});

describe('estimateRequest: odd shapes', () => {
  it('never throws and counts nothing it does not understand', () => {
    expect(
      estimateRequest({ messages: 'hi', system: 5, prompt: { a: 1 }, input: true, instructions: ['x'] }),
    ).toEqual({ input_tokens: 0, input_counter: 'utf8_bytes', unsized_parts: 0, max_output_tokens: null, n: 1, size: null, characters: 0 });
  });

  it('skips message entries that are not objects but still primes the reply', () => {
    expect(estimateRequest({ messages: [null, 5, 'x'] }).input_tokens).toBe(3);
  });

  it('counts framing for a message whose content it cannot read', () => {
    expect(estimateRequest({ messages: [{ role: 'user', content: 42 }] }).input_tokens).toBe(4 + 3);
  });

  it('does not throw on bigint values inside counted JSON', () => {
    // {"n":"12"} is 10 bytes: the bigint is written as its digits.
    expect(estimateRequest({ tools: { n: 12n } }).input_tokens).toBe(10);
  });

  it('ignores counted fields that are present but undefined', () => {
    expect(estimateRequest({ tools: undefined, response_format: undefined }).input_tokens).toBe(0);
  });
});

describe('several prompts', () => {
  it('a completions request with several prompts gets n completions for each', () => {
    expect(estimateRequest({ prompt: ['a', 'b'], max_tokens: 3 }).n).toBe(2);
    expect(estimateRequest({ prompt: [[1, 2], [3]], n: 2 }).n).toBe(4);
    expect(estimateRequest({ prompt: 'one', n: 3 }).n).toBe(3);
    // An array of token ids is one prompt.
    expect(estimateRequest({ prompt: [1, 2, 3] }).n).toBe(1);
  });
});

describe('estimateRequest: speech', () => {
  it('counts the characters of a text-to-speech input as code points, not bytes or UTF-16 units', () => {
    expect(estimateRequest({ model: 'tts-1', input: 'Hello, world!' }).characters).toBe(13);
    // é is 2 UTF-8 bytes, 😀 is 2 UTF-16 units and 4 bytes: each is one character.
    expect(estimateRequest({ input: 'café 😀' }).characters).toBe(6);
    expect(estimateRequest({ input: ['a', 'b'] }).characters).toBe(0);
  });
});
