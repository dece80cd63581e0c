import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { Template } from '@huggingface/jinja';
import { BYTE_TO_UNICODE, ByteLevelBpe, byteLevel, pretokenize } from '../../src/models/bpe.ts';
import { trainBpe } from '../../src/models/bpe-train.ts';
import { TINY_CHAT_TEMPLATE, trainTinyTokenizer } from '../../src/models/tiny.ts';
import { Tokenizer } from '../../src/models/tokenizer.ts';
import { noShared, sharedData } from '../helpers/shared.ts';

/** ~1.5 MB of real English, JSON and code-like text from the shared data folder. */
function corpus(): string[] {
  const files = [
    ['FLAN', 'qasc_train.tsv'],
    ['rouge', 'selfinstruct_filter_decisions.jsonl'],
    ['rouge', 'rougeL_pairs.jsonl'],
    ['gorilla', 'torchhub_eval.json'],
  ];
  return files.flatMap((f) => readFileSync(sharedData(...f), 'utf8').split('\n'));
}

/** Textbook BPE: recount every pair before each merge (slow, obviously correct). */
function naiveTrain(texts: string[], vocabSize: number, specials: string[]): [string, string][] {
  const strs = [...specials, ...BYTE_TO_UNICODE];
  const id = new Map(strs.map((s, i) => [s, i]));
  const counts = new Map<string, number>();
  for (const t of texts) for (const w of pretokenize(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
  let words = [...counts].map(([w, c]) => ({
    s: Array.from(byteLevel(w), (ch) => id.get(ch)!),
    c,
  }));
  const merges: [string, string][] = [];
  while (strs.length < vocabSize) {
    const pc = new Map<string, number>();
    for (const { s, c } of words)
      for (let i = 0; i + 1 < s.length; i++)
        pc.set(`${s[i]},${s[i + 1]}`, (pc.get(`${s[i]},${s[i + 1]}`) ?? 0) + c);
    let best: [number, number, number] | null = null;
    for (const [k, c] of pc) {
      const [a, b] = k.split(',').map(Number);
      if (
        best === null ||
        c > best[2] ||
        (c === best[2] && (a < best[0] || (a === best[0] && b < best[1])))
      )
        best = [a, b, c];
    }
    if (best === null || best[2] < 2) break;
    const [a, b] = best;
    merges.push([strs[a], strs[b]]);
    const m = strs[a] + strs[b];
    let nid = id.get(m);
    if (nid === undefined) {
      nid = strs.length;
      strs.push(m);
      id.set(m, nid);
    }
    words = words.map(({ s, c }) => {
      const out: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(nid!);
          i++;
        } else out.push(s[i]);
      }
      return { s: out, c };
    });
  }
  return merges;
}

const SAMPLES = [
  'Hello, world!',
  "It's a test: don't panic, we'll see.",
  'Numbers 12345 and 3.14159, 1,000,000.',
  '   leading and trailing spaces   ',
  'tabs\tand\nnew\n\nlines\r\n',
  'Unicode: naïve café, Ελληνικά, русский, 日本語のテキスト, 한국어',
  'Emoji 🙂👍🏽 and 👨‍👩‍👧 family',
  '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>',
  'code: def f(x):\n    return x ** 2  # square',
  '',
];

describe('byte-level BPE trainer', () => {
  test('incremental pair counts give exactly the merges of a recount-everything trainer', {
    skip: noShared,
  }, () => {
    const texts = corpus().slice(0, 400);
    const specials = ['<|endoftext|>'];
    const fast = trainBpe(texts, { vocabSize: 700, specialTokens: specials });
    const slow = naiveTrain(texts, 700, specials);
    assert.equal(fast.merges.length, slow.length);
    assert.deepEqual(fast.merges, slow);
  });

  test('2k vocab on 1.5 MB: HF tokenizers loads it and gives our ids; lossless round trip', {
    skip: noShared,
  }, () => {
    const texts = corpus();
    const t0 = performance.now();
    const { bpe, tokenizer } = trainTinyTokenizer(texts, 2048);
    const ms = performance.now() - t0;
    console.log(
      `# trained 2048-token BPE on ${texts.reduce((a, t) => a + t.length, 0)} chars in ${ms.toFixed(0)} ms`,
    );
    assert.equal(bpe.vocabSize, 2048);
    assert.equal(tokenizer.vocabSize, 2048);
    assert.deepEqual(
      bpe.specialTokens.map((s) => s.content),
      ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<pad>'],
    );
    for (const s of [...SAMPLES, ...texts.slice(0, 300), ...texts.slice(-100)]) {
      const ours = bpe.encode(s);
      assert.deepEqual(
        tokenizer.encode(s),
        ours,
        `ids differ for ${JSON.stringify(s.slice(0, 60))}`,
      );
      assert.equal(bpe.decode(ours), s);
      assert.equal(tokenizer.decode(ours), s);
    }
    // Special tokens stay whole; common words become single tokens.
    const chat = bpe.encode('<|im_start|>user\nhi<|im_end|>');
    assert.equal(chat[0], 1);
    assert.equal(chat[chat.length - 1], 2);
    assert.equal(bpe.encode(' the').length, 1);
    const sample = texts.slice(0, 200).join('\n');
    assert.ok(bpe.encode(sample).length < sample.length / 2, 'at least 2 characters per token');
    // Plain-text mode spells special tokens out.
    assert.ok(bpe.encode('<|im_end|>', { allowSpecial: false }).length > 1);
    assert.equal(tokenizer.eos?.token, '<|im_end|>');
    assert.equal(tokenizer.pad?.id, 3);
    assert.equal(tokenizer.bos, null);
    // tokenizer.json written by us reads back to the same BPE.
    const again = ByteLevelBpe.fromTokenizerJson(JSON.parse(JSON.stringify(bpe.toTokenizerJson())));
    assert.deepEqual(again.vocab, bpe.vocab);
    assert.deepEqual(again.merges, bpe.merges);
  });

  test('deterministic: the same corpus gives the same vocabulary', { skip: noShared }, () => {
    const texts = corpus().slice(0, 3000);
    const a = trainBpe(texts, { vocabSize: 1000 });
    const b = trainBpe([...texts], { vocabSize: 1000 });
    assert.deepEqual(a.vocab, b.vocab);
    assert.deepEqual(a.merges, b.merges);
  });

  test('the tiny chat template renders ChatML with the special tokens', () => {
    const out = new Template(TINY_CHAT_TEMPLATE).render({
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
      ],
      add_generation_prompt: true,
    });
    assert.equal(
      out,
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>assistant\n',
    );
    const { tokenizer } = trainTinyTokenizer(['a b c a b c hello hello'], 300);
    assert.equal(tokenizer.chatTemplate, TINY_CHAT_TEMPLATE);
    assert.ok(tokenizer instanceof Tokenizer);
  });
});
