/**
 * Deterministic prompt text for the tokenizer benchmark: English prose, TypeScript-like code and
 * CJK (Chinese with some Japanese kana), mixed by paragraph. Seeded, so every run measures the same bytes.
 */

export type TextKind = 'english' | 'code' | 'cjk' | 'mixed';

/** mulberry32: a tiny seeded PRNG, enough to pick words; not for anything secret. */
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

const ENGLISH_WORDS = (
  'the of and to in is you that it he was for on are as with his they at be this have from or one had by word ' +
  'but not what all were we when your can said there use an each which she do how their if will up other about ' +
  'out many then them these so some her would make like him into time has look two more write go see number no ' +
  'way could people my than first water been call who oil its now find long down day did get come made may part ' +
  'budget request invoice customer summary account service billing latency deployment database transaction ' +
  'reservation estimate settlement quarterly revenue forecast analysis report meeting schedule priority ' +
  'please explain the difference between following question answer briefly detail example context assistant'
).split(' ');

const CODE_LINES = [
  'export async function handle{N}(request: Request): Promise<Response> {',
  '  const body = await request.json() as { items: Item[]; total?: number };',
  '  if (!body.items?.length) return new Response("empty", { status: 400 });',
  '  for (const item of body.items) { total += item.price * item.quantity; }',
  '  const rows = await sql`select id, name from users where id = ${id{N}}`;',
  '  return Response.json({ ok: true, count: rows.length, id: "{N}" });',
  '}',
  'def compute_{N}(values: list[float]) -> float:',
  '    return sum(v * 0.5 for v in values if v > {N})',
  'SELECT customer_id, SUM(amount) AS total FROM orders WHERE created_at > now() - interval \'{N} days\' GROUP BY 1;',
  '// TODO({N}): retry with exponential backoff when the upstream answers 429',
  'const config = { retries: {N}, timeoutMs: 30_000, baseUrl: "https://api.example.com/v{N}" };',
];

const CJK_PHRASES = [
  '请用简短的语言解释',
  '预算和速率限制',
  '数据库中的每一笔交易',
  '这个问题的答案是',
  '我们需要在下周之前完成报告',
  '東京の天気はどうですか',
  'ありがとうございます',
  'プログラムのエラーを直してください',
  '人工智能模型的费用',
  '用户的请求已经被接受',
  '中文和日本語が混ざった文章',
];

function pick<T>(items: readonly T[], random: () => number): T {
  return items[Math.floor(random() * items.length)]!;
}

function englishParagraph(random: () => number): string {
  const sentences: string[] = [];
  const count = 2 + Math.floor(random() * 4);
  for (let s = 0; s < count; s++) {
    const words = Array.from({ length: 6 + Math.floor(random() * 14) }, () => pick(ENGLISH_WORDS, random));
    const sentence = words.join(' ');
    sentences.push(sentence.charAt(0).toUpperCase() + sentence.slice(1) + (random() < 0.15 ? '?' : '.'));
  }
  return sentences.join(' ');
}

function codeParagraph(random: () => number): string {
  const lines = Array.from({ length: 3 + Math.floor(random() * 6) }, () =>
    pick(CODE_LINES, random).replaceAll('{N}', String(Math.floor(random() * 1000))),
  );
  return '```\n' + lines.join('\n') + '\n```';
}

function cjkParagraph(random: () => number): string {
  const phrases = Array.from({ length: 3 + Math.floor(random() * 6) }, () => pick(CJK_PHRASES, random));
  return phrases.join('，') + '。';
}

const PARAGRAPH_OF: Record<Exclude<TextKind, 'mixed'>, (random: () => number) => string> = {
  english: englishParagraph,
  code: codeParagraph,
  cjk: cjkParagraph,
};

// Mixed text: mostly English, some code, a little CJK, as in a typical assistant conversation.
function mixedParagraph(random: () => number): string {
  const roll = random();
  if (roll < 0.6) return englishParagraph(random);
  if (roll < 0.85) return codeParagraph(random);
  return cjkParagraph(random);
}

const utf8 = new TextEncoder();

/** Text of `kind` of at most `bytes` UTF-8 bytes: whole paragraphs while the next one fits. */
export function promptText(kind: TextKind, bytes: number, seed: number): string {
  const random = seededRandom(seed);
  const paragraph = kind === 'mixed' ? mixedParagraph : PARAGRAPH_OF[kind];
  const parts: string[] = [];
  let size = -2;
  for (;;) {
    const next = paragraph(random);
    const nextSize = utf8.encode(next).length + 2;
    if (size + nextSize > bytes) return parts.join('\n\n');
    parts.push(next);
    size += nextSize;
  }
}

/** Inputs that are hard for a BPE tokenizer: long single pieces, and words that are in no vocabulary. */
export const WORST_SHAPES = [
  'ordinary mixed text',
  'one piece: a single letter repeated',
  'one piece: random letters',
  'one piece: spaces',
  'one piece: random CJK ideographs',
  'random 8-letter words',
] as const;

export type WorstShape = (typeof WORST_SHAPES)[number];

function fillTo(bytes: number, next: () => string): string {
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const part = next();
    parts.push(part);
    size += utf8.encode(part).length;
  }
  return parts.join('');
}

/** About `bytes` UTF-8 bytes of `shape`, different for each seed. */
export function worstShapeText(shape: WorstShape, bytes: number, seed: number): string {
  const random = seededRandom(seed);
  const letter = () => String.fromCharCode(97 + Math.floor(random() * 26));
  switch (shape) {
    case 'ordinary mixed text':
      return promptText('mixed', bytes, seed);
    case 'one piece: a single letter repeated':
      return letter().repeat(bytes);
    case 'one piece: random letters':
      return fillTo(bytes, letter);
    case 'one piece: spaces':
      return ' '.repeat(bytes - 1) + letter();
    case 'one piece: random CJK ideographs':
      return fillTo(bytes, () => String.fromCharCode(0x4e00 + Math.floor(random() * 20000)));
    case 'random 8-letter words':
      return fillTo(bytes, () => Array.from({ length: 8 }, letter).join('') + ' ');
  }
}
