import { describe, it, expect, beforeAll } from 'vitest';
import { countTokens as libraryO200k } from 'gpt-tokenizer/encoding/o200k_base';
import { countTokens as libraryCl100k } from 'gpt-tokenizer/encoding/cl100k_base';
import { Tiktoken } from 'js-tiktoken/lite';
import tiktokenO200kRanks from 'js-tiktoken/ranks/o200k_base';
import tiktokenCl100kRanks from 'js-tiktoken/ranks/cl100k_base';
import {
  encodingForModel,
  loadTokenizer,
  MAX_PIECE_CHARS,
  MAX_TOKENIZED_BYTES,
  type Tokenizer,
} from '../../lib/tokenizer.ts';
import { estimateRequest } from '../../lib/request-estimate.ts';

// Every hard-coded count below was checked against both gpt-tokenizer and js-tiktoken (a separate
// implementation of the same encodings); the property test at the end keeps checking that they agree.

let o200k: Tokenizer;
let cl100k: Tokenizer;

beforeAll(async () => {
  o200k = (await loadTokenizer('gpt-4o'))!;
  cl100k = (await loadTokenizer('gpt-4'))!;
});

describe('encodingForModel', () => {
  it('maps the o200k_base families, with their snapshots and variants', () => {
    for (const model of [
      'gpt-4o', 'gpt-4o-mini', 'gpt-4o-2024-08-06', 'chatgpt-4o-latest', 'gpt-4.1', 'gpt-4.1-nano',
      'gpt-4.5-preview', 'gpt-5', 'gpt-5-mini', 'gpt-5.1', 'gpt-5.2-codex', 'o1', 'o1-mini', 'o3', 'o3-pro', 'o4-mini',
    ]) {
      expect(encodingForModel(model), model).toBe('o200k_base');
    }
  });

  it('maps the cl100k_base families', () => {
    for (const model of [
      'gpt-4', 'gpt-4-turbo', 'gpt-4-0613', 'gpt-4-32k', 'gpt-3.5-turbo', 'gpt-3.5-turbo-instruct', 'gpt-35-turbo',
      'text-embedding-3-small', 'text-embedding-3-large', 'text-embedding-ada-002',
    ]) {
      expect(encodingForModel(model), model).toBe('cl100k_base');
    }
  });

  it('strips the prefixes of hosts that serve OpenAI models, and reads fine-tunes by their base', () => {
    expect(encodingForModel('openai/gpt-4o')).toBe('o200k_base');
    expect(encodingForModel('azure/gpt-4o-mini')).toBe('o200k_base');
    expect(encodingForModel('azure/openai/gpt-4.1')).toBe('o200k_base');
    expect(encodingForModel('openrouter/openai/gpt-4o')).toBe('o200k_base');
    expect(encodingForModel('openai/gpt-3.5-turbo')).toBe('cl100k_base');
    expect(encodingForModel('ft:gpt-4o-mini-2024-07-18:acme::abc123')).toBe('o200k_base');
    expect(encodingForModel('openai/ft:gpt-3.5-turbo-0125:acme:x:1')).toBe('cl100k_base');
  });

  it('gives no encoding to other models, unknown hosts and look-alikes', () => {
    for (const model of [
      'claude-sonnet-4-5', 'anthropic/claude-3-5-sonnet', 'gemini-2.5-pro', 'mistral-large-latest',
      'meta-llama/Llama-3.1-70B', 'deepseek-chat', 'openrouter/anthropic/claude-3-opus', 'gpt-oss-120b',
      'together/gpt-4o', 'groq/openai/gpt-4o', 'gpt-4o2', 'o10', 'xgpt-4o', 'gpt', 'text-embedding-004', 'GPT-4o', '',
    ]) {
      expect(encodingForModel(model), model).toBeNull();
    }
    expect(encodingForModel(null)).toBeNull();
    expect(encodingForModel(undefined)).toBeNull();
  });
});

describe('loadTokenizer', () => {
  it('loads each encoding once per process', async () => {
    expect(loadTokenizer('gpt-4o')).toBe(loadTokenizer('openai/o3-mini'));
    expect(await loadTokenizer('gpt-4o-mini')).toBe(o200k);
    expect(await loadTokenizer('text-embedding-3-small')).toBe(cl100k);
    expect(o200k.encoding).toBe('o200k_base');
    expect(cl100k.encoding).toBe('cl100k_base');
  });

  it('is null for models it cannot count exactly', async () => {
    expect(await loadTokenizer('claude-sonnet-4-5')).toBeNull();
    expect(await loadTokenizer(undefined)).toBeNull();
  });

  it('counts concrete strings to the token, per encoding', () => {
    const cases: [text: string, o200k: number, cl100k: number][] = [
      ['hi', 1, 1],
      ['hello world', 2, 2],
      ['Hello, world!', 4, 4],
      ['héllo', 2, 3],
      ['The quick brown fox jumps over the lazy dog.', 10, 10],
      ['const answer = 42;', 6, 6],
      ['日本語のテキストです', 7, 9],
      ['你好，世界。', 4, 7],
      ['😀', 1, 2],
      ['', 0, 0],
    ];
    for (const [text, o200kTokens, cl100kTokens] of cases) {
      expect(o200k.count(text), text).toBe(o200kTokens);
      expect(cl100k.count(text), text).toBe(cl100kTokens);
    }
  });

  it('counts special-token spellings as plain text instead of throwing', () => {
    // <|endoftext|> is one special token to the library by default, but the API reads user text as text: 7 tokens.
    expect(o200k.count('<|endoftext|>')).toBe(7);
    expect(cl100k.count('<|endoftext|>')).toBe(7);
  });
});

describe('pieces too long to merge cheaply', () => {
  it('counts pieces up to MAX_PIECE_CHARS and gives Infinity past it', () => {
    expect(MAX_PIECE_CHARS).toBe(256);
    // 'a' × 256 is one piece of 256 characters: 32 tokens in both encodings.
    expect(o200k.count('a'.repeat(256))).toBe(32);
    expect(cl100k.count('a'.repeat(256))).toBe(32);
    expect(o200k.count('a'.repeat(257))).toBe(Infinity);
    expect(cl100k.count('a'.repeat(257))).toBe(Infinity);
    // The space in front joins the letters' piece: 257 characters.
    expect(o200k.count(' ' + 'a'.repeat(256))).toBe(Infinity);
    expect(o200k.count(' '.repeat(300) + 'x')).toBe(Infinity);
    expect(o200k.count('!?'.repeat(150))).toBe(Infinity);
  });

  it('still counts what ordinary text has: an 80-character rule, a long sentence', () => {
    expect(o200k.count('-'.repeat(80))).toBe(1);
    expect(o200k.count('# ' + '='.repeat(78) + '\n')).toBe(3);
    // 10 tokens per sentence; the last sentence's trailing space is one more.
    expect(o200k.count('The quick brown fox jumps over the lazy dog. '.repeat(20))).toBe(201);
  });

  it('makes the estimate keep the byte bound for the whole request', () => {
    const request = {
      messages: [
        { role: 'user', content: 'hello world' },
        { role: 'user', content: 'a'.repeat(300) },
      ],
    };
    expect(estimateRequest(request, o200k)).toMatchObject({
      input_tokens: 4 + 11 + 4 + 300 + 3,
      input_counter: 'utf8_bytes',
    });
  });
});

describe('estimateRequest with a tokenizer', () => {
  it('counts text with the tokenizer and keeps the framing', () => {
    // "hi" is 1 token in both encodings: 4 framing + 1 + 3 priming.
    expect(estimateRequest({ messages: [{ role: 'user', content: 'hi' }] }, o200k)).toEqual({
      input_tokens: 4 + 1 + 3,
      input_counter: 'o200k_base',
      unsized_parts: 0,
      max_output_tokens: null,
      n: 1,
      size: null,
      characters: 0,
    });
    expect(estimateRequest({ messages: [{ role: 'user', content: '你好，世界。' }] }, cl100k)).toMatchObject({
      input_tokens: 4 + 7 + 3,
      input_counter: 'cl100k_base',
    });
  });

  it('counts system prompts, instructions, names, tool calls and tool definitions', () => {
    const request = {
      system: 'be brief', // 2
      instructions: 'sys', // 1
      messages: [
        { role: 'user', name: 'bob', content: 'what is this?' }, // 4 + 1 + 4
        { role: 'tool', tool_call_id: 'call_1', content: 'ok' }, // 4 + 3 + 1
      ],
      // [{"name":"f"}] 7, "auto" 3, {"type":"json_object"} 6, + 12 for defining tools.
      tools: [{ name: 'f' }],
      tool_choice: 'auto',
      response_format: { type: 'json_object' },
    };
    expect(estimateRequest(request, o200k).input_tokens).toBe(2 + 1 + (4 + 1 + 4) + (4 + 3 + 1) + 3 + (7 + 3 + 6 + 12));
  });

  it('counts a real tool definition by the tokens of its JSON plus the framing', () => {
    const tools = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Get the weather',
          parameters: { type: 'object', properties: { location: { type: 'string' } } },
        },
      },
    ];
    // Its JSON is 162 bytes and 35 tokens in both encodings.
    expect(estimateRequest({ tools }, o200k).input_tokens).toBe(35 + 12);
    expect(estimateRequest({ tools }, cl100k).input_tokens).toBe(35 + 12);
    expect(estimateRequest({ tools }).input_tokens).toBe(162 + 12);
  });

  it('still counts media parts as unsized and token ids one each', () => {
    const estimate = estimateRequest(
      { messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: {} }] }] },
      o200k,
    );
    expect(estimate).toMatchObject({ input_tokens: 4 + 1 + 3, unsized_parts: 1, input_counter: 'o200k_base' });
    expect(estimateRequest({ prompt: [[1, 2, 3], 'a cat'] }, o200k).input_tokens).toBe(3 + 2);
  });

  it('counts bytes without a tokenizer (models that are not OpenAI\'s)', async () => {
    const request = { messages: [{ role: 'user', content: 'hello world' }] };
    expect(estimateRequest(request, await loadTokenizer('anthropic/claude-3-5-sonnet'))).toMatchObject({
      input_tokens: 4 + 11 + 3,
      input_counter: 'utf8_bytes',
    });
    expect(estimateRequest(request, await loadTokenizer('openrouter/openai/gpt-4o'))).toMatchObject({
      input_tokens: 4 + 2 + 3,
      input_counter: 'o200k_base',
    });
  });

  it('counts bytes once the byte bound is above MAX_TOKENIZED_BYTES', () => {
    expect(MAX_TOKENIZED_BYTES).toBe(8192);
    // 'word ' × 1637 is 8185 bytes and 1638 tokens: "word", " word" × 1636, and the trailing " ".
    const atCap = { messages: [{ role: 'user', content: 'word '.repeat(1637) }] };
    expect(estimateRequest(atCap)).toMatchObject({ input_tokens: 4 + 8185 + 3, input_counter: 'utf8_bytes' });
    expect(estimateRequest(atCap, o200k)).toMatchObject({ input_tokens: 4 + 1638 + 3, input_counter: 'o200k_base' });
    // One byte more and the tokenizer is not run.
    const overCap = { messages: [{ role: 'user', content: 'word '.repeat(1637) + 'x' }] };
    expect(estimateRequest(overCap, o200k)).toMatchObject({ input_tokens: 4 + 8186 + 3, input_counter: 'utf8_bytes' });
  });
});

/** mulberry32, seeded: the same strings on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Pieces that stress different paths of the encoders: words, digits, whitespace runs, accents and combining
// marks, CJK, emoji (surrogate pairs), a lone surrogate, special-token spellings.
const FRAGMENTS = [
  'the', ' quick', 'Fox', "'s", ' 12345', '3.14', '  ', '\n', '\t', '\r\n', ' \n ', '!!', '...', '{"a":1}', '</div>',
  'é', 'e\u0301', 'ß', 'Ω', 'Привет', 'مرحبا', '日本', 'の', '中文', '한국어', '😀', '👩‍💻', '\ud800', '<|endoftext|>',
  '<|im_start|>', 'x', 'ZZZ', '_', '/', 'ab/cd', '\u00a0', '\u3000',
];

function randomText(random: () => number): string {
  const length = Math.floor(random() * 40);
  let text = '';
  for (let i = 0; i < length; i++) text += FRAGMENTS[Math.floor(random() * FRAGMENTS.length)]!;
  return text;
}

const utf8 = new TextEncoder();
const plainText = { disallowedSpecial: new Set<string>() };

describe('property: exact for OpenAI text, never above the byte bound', () => {
  it('matches the libraries and stays within the byte bound for seeded random strings', () => {
    const tiktokenO200k = new Tiktoken(tiktokenO200kRanks);
    const tiktokenCl100k = new Tiktoken(tiktokenCl100kRanks);
    const random = seededRandom(20240611);
    for (let i = 0; i < 400; i++) {
      const text = randomText(random);
      const bytes = utf8.encode(text).length;
      const o200kTokens = o200k.count(text);
      const cl100kTokens = cl100k.count(text);
      expect(o200kTokens, text).toBe(libraryO200k(text, plainText));
      expect(cl100kTokens, text).toBe(libraryCl100k(text, plainText));
      expect(o200kTokens, text).toBe(tiktokenO200k.encode(text, [], []).length);
      expect(cl100kTokens, text).toBe(tiktokenCl100k.encode(text, [], []).length);
      expect(o200kTokens, text).toBeLessThanOrEqual(bytes);
      expect(cl100kTokens, text).toBeLessThanOrEqual(bytes);
    }
  });

  it('never estimates a request above its byte-bound estimate, and adds the same framing', () => {
    const random = seededRandom(7);
    for (let i = 0; i < 200; i++) {
      const texts = Array.from({ length: 1 + Math.floor(random() * 4) }, () => randomText(random));
      const request = {
        system: texts[0],
        messages: texts.map((content) => ({ role: 'user', content })),
        tools: random() < 0.5 ? [{ name: texts[0] }] : undefined,
      };
      const bytes = estimateRequest(request);
      const framing = 4 * texts.length + 3 + (request.tools ? 12 : 0);
      const toolsJson = request.tools ? JSON.stringify(request.tools) : '';
      for (const tokenizer of [o200k, cl100k]) {
        const exact = estimateRequest(request, tokenizer);
        expect(exact.input_tokens).toBeLessThanOrEqual(bytes.input_tokens);
        const textTokens = [texts[0]!, ...texts, toolsJson].reduce((sum, t) => sum + tokenizer.count(t), 0);
        expect(exact.input_tokens).toBe(framing + textTokens);
      }
    }
  });
});
