/**
 * What counting input tokens costs on the reservation hot path: the UTF-8 byte bound against a real
 * tokenizer (js-tiktoken and gpt-tokenizer, o200k_base and cl100k_base), on deterministic prompts.
 * Prints figures; asserts nothing. Run: npm run bench:tokenizer
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Tiktoken } from 'js-tiktoken/lite';
import jsO200k from 'js-tiktoken/ranks/o200k_base';
import jsCl100k from 'js-tiktoken/ranks/cl100k_base';
import * as gptO200k from 'gpt-tokenizer/encoding/o200k_base';
import * as gptCl100k from 'gpt-tokenizer/encoding/cl100k_base';
import { estimateRequest } from '../lib/request-estimate.ts';
import { loadTokenizer, MAX_PIECE_CHARS, MAX_TOKENIZED_BYTES } from '../lib/tokenizer.ts';
import { promptText, worstShapeText, WORST_SHAPES, type TextKind } from './prompts.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const utf8 = new TextEncoder();

// Special tokens such as <|endoftext|> in user text are plain text to the API, never an error or a control token.
const NO_SPECIAL = { disallowedSpecial: new Set<string>() };
const jsTiktokenO200k = new Tiktoken(jsO200k);
const jsTiktokenCl100k = new Tiktoken(jsCl100k);

type Counter = (text: string) => number;

// The libraries as they come (gpt-tokenizer's merge cache at its default 100,000 entries).
const libraryCounters: Record<string, Counter> = {
  'utf8 bytes (TextEncoder)': (text) => utf8.encode(text).length,
  'js-tiktoken o200k_base': (text) => jsTiktokenO200k.encode(text, [], []).length,
  'gpt-tokenizer o200k_base': (text) => gptO200k.countTokens(text, NO_SPECIAL),
  'gpt-tokenizer o200k_base, merge cache cleared per call': (text) => {
    gptO200k.clearMergeCache();
    return gptO200k.countTokens(text, NO_SPECIAL);
  },
  'js-tiktoken cl100k_base': (text) => jsTiktokenCl100k.encode(text, [], []).length,
  'gpt-tokenizer cl100k_base': (text) => gptCl100k.countTokens(text, NO_SPECIAL),
};

// spendgate's own path: loadTokenizer shrinks the merge cache of the same module instance, so these run last.
async function spendgateCounters(): Promise<Record<string, Counter>> {
  const tokenizer = (await loadTokenizer('gpt-4o'))!;
  return {
    'spendgate o200k_base tokenizer (merge cache 1,024)': tokenizer.count,
    [`spendgate estimateRequest, gpt-4o (byte pass, then tokenizer up to ${MAX_TOKENIZED_BYTES / 1024} KiB)`]: (text) =>
      estimateRequest({ messages: [{ role: 'user', content: text }] }, tokenizer).input_tokens,
  };
}

// Medium stays under MAX_TOKENIZED_BYTES with its framing, so the estimateRequest row shows a tokenized call.
const SIZES = [
  { name: 'short chat', bytes: 200, distinct: 200 },
  { name: 'medium', bytes: 8000, distinct: 50 },
  { name: 'long', bytes: 200_000, distinct: 4 },
] as const;

const MIN_MEASURE_MS = 400;
const MIN_CALLS = 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** µs per call over distinct texts (so no tokenizer is timed on a text it has just seen), after one warm-up pass. */
function timePerCall(count: Counter, texts: readonly string[]): number {
  for (const text of texts) count(text);
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < MIN_MEASURE_MS || calls < MIN_CALLS) {
    count(texts[calls % texts.length]!);
    calls++;
    elapsed = performance.now() - start;
  }
  return (elapsed * 1000) / calls;
}

function fmt(value: number, digits = 1): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function speedTable(counters: Record<string, Counter>, heading: boolean): void {
  if (heading) console.log('## Cost per call (mixed English/code/CJK text; µs per call, MB/s of UTF-8)\n');
  if (heading) {
    console.log('| counter | ' + SIZES.map((s) => `${s.name} ≤${fmt(s.bytes, 0)} B`).join(' | ') + ' |');
    console.log('|---|' + SIZES.map(() => '---:').join('|') + '|');
  }
  const pools = SIZES.map((size) =>
    Array.from({ length: size.distinct }, (_, i) => promptText('mixed', size.bytes, 1000 * size.bytes + i)),
  );
  for (const [name, count] of Object.entries(counters)) {
    const cells = pools.map((texts) => {
      const bytes = texts.reduce((sum, t) => sum + utf8.encode(t).length, 0) / texts.length;
      const micros = timePerCall(count, texts);
      return `${fmt(micros, micros < 10 ? 2 : 0)} µs, ${fmt(bytes / micros, 1)} MB/s`;
    });
    console.log(`| ${name} | ${cells.join(' | ')} |`);
  }
}

function ratioTable(): void {
  console.log('## Overestimate of the byte bound: UTF-8 bytes / real tokens (32 KiB of each kind)\n');
  console.log('| text | bytes | o200k_base tokens | bytes/token | cl100k_base tokens | bytes/token | libraries agree |');
  console.log('|---|---:|---:|---:|---:|---:|---|');
  const kinds: TextKind[] = ['english', 'code', 'cjk', 'mixed'];
  for (const kind of kinds) {
    const text = promptText(kind, 32 * 1024, 7);
    const bytes = utf8.encode(text).length;
    const o200k = gptO200k.countTokens(text, NO_SPECIAL);
    const cl100k = gptCl100k.countTokens(text, NO_SPECIAL);
    const agree =
      o200k === jsTiktokenO200k.encode(text, [], []).length && cl100k === jsTiktokenCl100k.encode(text, [], []).length;
    console.log(
      `| ${kind} | ${bytes} | ${o200k} | ${fmt(bytes / o200k, 2)} | ${cl100k} | ${fmt(bytes / cl100k, 2)} | ${agree ? 'yes' : 'NO'} |`,
    );
  }
  console.log();
}

const WORST_SIZES = [2048, 4096, 8192, 16384];
const WORST_RUNS = 5;

// BPE merging is quadratic in the length of one pre-tokenized piece, and text that is no language costs far
// more per byte than prose. These shapes size MAX_TOKENIZED_BYTES and MAX_PIECE_CHARS: the worst either lets
// through. The merge cache is emptied before each call, so no shape is timed on pieces it has just seen.
async function worstShapeTable(): Promise<void> {
  const tokenizer = (await loadTokenizer('gpt-4o'))!;
  const rows: [string, Counter][] = [
    ['gpt-tokenizer countTokens', (text) => gptO200k.countTokens(text, NO_SPECIAL)],
    [`spendgate count (pieces over ${MAX_PIECE_CHARS} chars: bytes)`, tokenizer.count],
  ];
  console.log('## Worst shapes, o200k_base (ms per call, median of 5 distinct texts; ∞ = left to the byte bound)\n');
  console.log('| text | counter | ' + WORST_SIZES.map((b) => `${b / 1024} KiB`).join(' | ') + ' |');
  console.log('|---|---|' + WORST_SIZES.map(() => '---:').join('|') + '|');
  for (const shape of WORST_SHAPES) {
    for (const [name, count] of rows) {
      const cells = WORST_SIZES.map((bytes) => {
        let counted = 0;
        const times = Array.from({ length: WORST_RUNS }, (_, run) => {
          const text = worstShapeText(shape, bytes, 31 * run + bytes);
          gptO200k.clearMergeCache();
          const start = performance.now();
          counted = count(text);
          return performance.now() - start;
        });
        return `${fmt(median(times), 1)}${Number.isFinite(counted) ? '' : ' ∞'}`;
      });
      console.log(`| ${shape} | ${name} | ${cells.join(' | ')} |`);
    }
  }
  console.log();
}

// Each load is timed in a fresh Node process: a module is evaluated once per process, and cold start is what a
// serverless instance pays on its first reservation.
const LOADS: Record<string, string> = {
  'js-tiktoken o200k_base': `const { Tiktoken } = await import('js-tiktoken/lite');
    const ranks = (await import('js-tiktoken/ranks/o200k_base')).default;
    const imported = performance.now(); const enc = new Tiktoken(ranks); const built = performance.now();
    enc.encode('hello world', [], []);`,
  'js-tiktoken cl100k_base': `const { Tiktoken } = await import('js-tiktoken/lite');
    const ranks = (await import('js-tiktoken/ranks/cl100k_base')).default;
    const imported = performance.now(); const enc = new Tiktoken(ranks); const built = performance.now();
    enc.encode('hello world', [], []);`,
  'gpt-tokenizer o200k_base': `const enc = await import('gpt-tokenizer/encoding/o200k_base');
    const imported = performance.now(); const built = imported;
    enc.countTokens('hello world', { disallowedSpecial: new Set() });`,
  'gpt-tokenizer cl100k_base': `const enc = await import('gpt-tokenizer/encoding/cl100k_base');
    const imported = performance.now(); const built = imported;
    enc.countTokens('hello world', { disallowedSpecial: new Set() });`,
};

const LOAD_RUNS = 5;

function loadOnce(body: string): number[] {
  const script = `globalThis.gc(); const heap0 = process.memoryUsage().heapUsed; const t0 = performance.now();
    ${body}
    const first = performance.now(); globalThis.gc();
    console.log(JSON.stringify([imported - t0, built - imported, first - built, first - t0,
      (process.memoryUsage().heapUsed - heap0) / 1048576]));`;
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  return JSON.parse(out) as number[];
}

function loadTable(): void {
  console.log(`## Cold load in a fresh process (median of ${LOAD_RUNS}; ms, heap MiB after load)\n`);
  console.log('| tokenizer | import | build ranks | first count | total | heap retained |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [name, body] of Object.entries(LOADS)) {
    const runs = Array.from({ length: LOAD_RUNS }, () => loadOnce(body));
    const column = (i: number) => median(runs.map((r) => r[i]!));
    console.log(
      `| ${name} | ${fmt(column(0))} | ${fmt(column(1))} | ${fmt(column(2))} | ${fmt(column(3))} | ${fmt(column(4))} |`,
    );
  }
  console.log();
}

console.log(`Node ${process.version}, ${process.platform}/${process.arch}\n`);
loadTable();
ratioTable();
speedTable(libraryCounters, true);
speedTable(await spendgateCounters(), false);
console.log();
await worstShapeTable();
