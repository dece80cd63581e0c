// External check of SentencePiece-style vocabularies in GGUF: a tiny random LLaMA with the real
// Llama 2 tokenizer (32000 pieces, byte fallback, ▁ for spaces) is exported with
// tokenizer.ggml.model "llama" and loaded by llama.cpp (node-llama-cpp's prebuilt CPU binaries;
// nothing is built or downloaded). llama.cpp has no merge list for these vocabularies, only
// per-token scores, so (a) its token ids must equal @huggingface/tokenizers' on texts that probe
// spaces, newlines, digits, punctuation, special tokens and byte fallback; (b) the engine's
// last-position logits and llama.cpp's agree within 1e-3 (f32); (c) greedy continuations agree.
// The rest checks that what cannot be expressed is refused with the reason.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { LlamaModel, Token } from 'node-llama-cpp';
import { parseHfConfig } from '../../src/models/config.ts';
import { generate, lastLogits } from '../../src/models/generate.ts';
import { GgufType, GgufWriter } from '../../src/models/gguf.ts';
import { exportGguf } from '../../src/models/gguf-export.ts';
import { GgufReader } from '../../src/models/gguf-reader.ts';
import {
  detectSpmLayout,
  tokenizerFromGguf,
  writeGgufTokenizer,
} from '../../src/models/gguf-tokenizer.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { Tokenizer } from '../../src/models/tokenizer.ts';
import { FormatError } from '../../src/util/errors.ts';
import { llama, llamaCppGreedy, llamaCppLogits } from '../helpers/llamacpp.ts';
import { repoRoot } from '../helpers/shared.ts';

const LLAMA2 = join(repoRoot, 'node_modules', '@lenml', 'tokenizer-llama2', 'models');
const dir = mkdtempSync(join(tmpdir(), 'ik-gguf-spm-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const TEXTS = [
  'Hello, world!',
  'Hello world',
  ' one leading space',
  '   three leading spaces',
  'one trailing space ',
  'trailing spaces    ',
  'runs  of   spaces    inside      here',
  ' ',
  '      ',
  '\n',
  'line one\nline two\n\nline four',
  '\n\nleading newlines and a trailing one\n',
  'tabs\tand\t\ttabs, \r\n windows line end',
  'digits 0 12 345 6789 1234567890',
  '3.14159 -2.5e10 1,000,000 2024-06-01 12:30',
  'punctuation: !?.,;:"\'()[]{}<>/\\|@#$%^&*-_=+~`',
  "contractions: I'm you're they've it'll he'd don't",
  'naïve café résumé déjà vu',
  'é',
  'e\u0301te (decomposed accent)',
  '中文',
  '中文分词测试：你好，世界！',
  '日本語のカタカナとひらがな',
  'Ελληνικά, русский, 한국어, עברית, العربية',
  'emoji 🙂',
  '👍🏽 👨‍👩‍👧 🦙🦙',
  '©®™ ±×÷ €£¥ ∑∫√∞ ≠≤≥',
  'code: if (x >= 10) { return arr[i] ** 2; } // done',
  'https://example.com/path?q=1&r=2#frag',
  'The quick brown fox jumps over the lazy dog.',
  'Q: What is 2+2?\nA: 4',
  '<s>',
  '</s> after the end token',
  'text<s>inside</s>text',
  '[INST] What is a llama? [/INST]',
  '<unk> and <0x41> spelled out',
  '▁ a literal metaspace ▁▁',
  'zero\u200bwidth, nbsp a\u00a0b, ideographic x\u3000y, nul a\u0000b',
  'x',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
];

const PROMPTS = [
  'Once upon a time',
  'The capital of France is',
  'def fibonacci(n):',
  '1, 2, 3, 4,',
  'Q: What is the process by which plants make food?\nA:',
  '[INST] Name a planet. [/INST]',
  'Le café est',
  '中文',
  'emoji 🙂 and',
  '   indented',
  'Hello</s><s>again',
];

let tok: Tokenizer;
let llama2Json: Record<string, unknown>;
before(async () => {
  tok = await Tokenizer.load(LLAMA2);
  llama2Json = JSON.parse(readFileSync(join(LLAMA2, 'tokenizer.json'), 'utf8'));
});

const spec = parseHfConfig({
  model_type: 'llama',
  vocab_size: 32000,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 128,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  bos_token_id: 1,
  eos_token_id: 2,
  tie_word_embeddings: false,
  // Wide weights spread the 32000 logits (std ≈ 4), so greedy picks are far from ties.
  initializer_range: 0.5,
});

/** A GGUF holding only a vocabulary (llama.cpp loads it with vocabOnly). */
async function vocabGguf(
  t: Tokenizer,
  name: string,
  edit?: (w: GgufWriter) => void,
): Promise<string> {
  const w = new GgufWriter();
  w.set('general.architecture', GgufType.STRING, 'llama');
  for (const [k, v] of [
    ['context_length', 2048],
    ['embedding_length', 64],
    ['block_count', 1],
    ['feed_forward_length', 128],
    ['attention.head_count', 4],
    ['attention.head_count_kv', 4],
    ['rope.dimension_count', 16],
  ] as const)
    w.set(`llama.${k}`, GgufType.UINT32, v);
  w.set('llama.attention.layer_norm_rms_epsilon', GgufType.FLOAT32, 1e-5);
  writeGgufTokenizer(w, t, t.vocabSize);
  edit?.(w);
  const path = join(dir, `${name}.gguf`);
  await w.write(path);
  return path;
}

/** Texts where llama.cpp's ids differ from ours (special tokens parsed on both sides). */
function mismatches(model: LlamaModel, t: Tokenizer, texts: readonly string[]): string[] {
  return texts.filter(
    (s) =>
      JSON.stringify([...model.tokenize(s, true)]) !==
      JSON.stringify(t.encode(s, { addSpecialTokens: false })),
  );
}

describe('Llama 2 vocabulary (SentencePiece-style BPE) through GGUF into llama.cpp', () => {
  let model: CausalLM;
  let path: string;
  let ll: LlamaModel;
  before(async () => {
    model = CausalLM.random(spec, 5, tok);
    path = join(dir, 'tiny-llama2.gguf');
    await exportGguf(path, spec, model.weights, { tokenizer: tok, fileType: 'f32' });
    ll = await (await llama()).loadModel({ modelPath: path });
  });
  after(async () => {
    await ll?.dispose();
  });

  test('the file carries the "llama" tokenizer keys: scores, token types, no merges', () => {
    const r = GgufReader.open(path);
    try {
      assert.equal(r.str('tokenizer.ggml.model'), 'llama');
      assert.equal(r.get('tokenizer.ggml.merges'), undefined);
      assert.equal(r.get('tokenizer.ggml.add_space_prefix'), true);
      assert.equal(r.get('tokenizer.ggml.add_bos_token'), true);
      assert.equal(r.get('tokenizer.ggml.add_eos_token'), false);
      const types = r.array('tokenizer.ggml.token_type') as number[];
      const tokens = r.array('tokenizer.ggml.tokens') as string[];
      assert.equal(tokens.length, 32000);
      assert.deepEqual(types.slice(0, 3), [2, 3, 3]); // <unk> unknown, <s> </s> control
      assert.equal(types.filter((t) => t === 6).length, 256);
      assert.equal(tokens[types.indexOf(6) + 10], '<0x0A>');
      const scores = r.array('tokenizer.ggml.scores') as number[];
      // "▁t" is the first merge; "▁▁" comes late in Llama 2's merges, so it scores below "er".
      assert.ok(scores[tok.tokenToId('▁t')!]! > scores[tok.tokenToId('er')!]!);
      assert.ok(scores[tok.tokenToId('er')!]! > scores[tok.tokenToId('▁▁')!]!);
    } finally {
      r.close();
    }
  });

  test(`(a) llama.cpp tokenizes ${TEXTS.length} texts exactly like tokenizer.json`, async () => {
    assert.equal(ll.tokens.bos, 1);
    assert.equal(ll.tokens.eos, 2);
    assert.equal(ll.tokens.shouldPrependBosToken, true);
    assert.equal(ll.tokens.shouldAppendEosToken, false);
    let bytes = 0;
    for (const s of TEXTS) {
      const ours = tok.encode(s, { addSpecialTokens: false });
      assert.deepEqual([...ll.tokenize(s, true)], ours, JSON.stringify(s));
      if (!/<s>|<\/s>|<unk>/.test(s))
        assert.equal(ll.detokenize(ours as Token[]), tok.decode(ours), JSON.stringify(s));
      bytes += ours.filter((id) => /^<0x[0-9A-F]{2}>$/.test(tok.idToToken(id)!)).length;
    }
    // The set really exercises byte fallback (emoji, CJK characters outside the vocabulary).
    assert.ok(bytes >= 20, `only ${bytes} byte tokens`);
    // And the check can fail: scored by token id (Llama 2's ids follow its merge order except
    // that "▁▁" and "▁▁▁▁" are early ids with late merges), runs of spaces split differently.
    const byId = await vocabGguf(tok, 'llama2-scored-by-id', (w) =>
      w.setArray(
        'tokenizer.ggml.scores',
        GgufType.FLOAT32,
        Array.from({ length: 32000 }, (_, i) => -i),
      ),
    );
    const m2 = await (await llama()).loadModel({ modelPath: byId, vocabOnly: true });
    try {
      const off = mismatches(m2, tok, TEXTS);
      assert.ok(off.includes('   three leading spaces'), JSON.stringify(off));
    } finally {
      await m2.dispose();
    }
  });

  test('(a) the GGUF vocabulary imported back tokenizes like the original', () => {
    const r = GgufReader.open(path);
    const again = tokenizerFromGguf(r);
    r.close();
    assert.ok(again !== null);
    for (const s of TEXTS) {
      assert.deepEqual(again.encode(s), tok.encode(s), JSON.stringify(s));
      const ids = tok.encode(s, { addSpecialTokens: false });
      assert.equal(again.decode(ids), tok.decode(ids), JSON.stringify(s));
    }
    assert.equal(again.bos?.id, 1);
    assert.equal(again.eos?.id, 2);
    assert.equal(again.unk?.id, 0);
  });

  test('(b) last-position logits of the engine and llama.cpp agree within 1e-3', async () => {
    let worst = 0;
    for (const p of PROMPTS.slice(0, 4)) {
      const ids = tok.encode(p);
      const ours = await lastLogits(model, ids);
      const theirs = await llamaCppLogits(ll, ids, spec.vocabSize);
      let max = 0;
      for (let t = 0; t < ours.length; t++) max = Math.max(max, Math.abs(ours[t]! - theirs[t]!));
      assert.ok(max < 1e-3, `${JSON.stringify(p)}: max |Δlogit| ${max}`);
      worst = Math.max(worst, max);
    }
    console.log(`# llama2 vocab, f32: max |Δlogit| ${worst.toExponential(2)}`);
  });

  test(`(c) greedy continuations of ${PROMPTS.length} prompts are identical`, async () => {
    const steps = 5;
    const ours = await generate(model, PROMPTS, { max_new_tokens: steps, stop_token_ids: [] });
    for (let i = 0; i < PROMPTS.length; i++) {
      // llama.cpp's own tokenization of the prompt, with the BOS it says to prepend.
      const ids = [ll.tokens.bos!, ...ll.tokenize(PROMPTS[i]!, true)];
      assert.deepEqual(ids, tok.encode(PROMPTS[i]!));
      const theirs = await llamaCppGreedy(ll, ids, spec.vocabSize, steps);
      assert.deepEqual(ours[i]!.tokens, theirs, JSON.stringify(PROMPTS[i]));
    }
  });
});

describe('SentencePiece-style layouts other than Llama 2 legacy', () => {
  function variant(pre: unknown): Tokenizer {
    const j = JSON.parse(JSON.stringify(llama2Json));
    j.normalizer = null;
    j.pre_tokenizer = pre;
    return Tokenizer.fromJson(j, tok.tokenizerConfig, 'variant tokenizer.json');
  }

  test('Metaspace "never" (no prefix ▁) is exact in llama.cpp', async () => {
    const t = variant({
      type: 'Metaspace',
      replacement: '▁',
      prepend_scheme: 'never',
      split: false,
    });
    assert.deepEqual(detectSpmLayout(t.tokenizerJson), { addSpacePrefix: false, exact: true });
    const m = await (await llama()).loadModel({
      modelPath: await vocabGguf(t, 'metaspace-never'),
      vocabOnly: true,
    });
    try {
      assert.deepEqual(mismatches(m, t, TEXTS), []);
      assert.equal(t.encode('Hello', { addSpecialTokens: false })[0], tok.tokenToId('Hello'));
    } finally {
      await m.dispose();
    }
  });

  test('Metaspace "first" matches except where documented: a section starting with a space, text after a special token', async () => {
    const t = variant({
      type: 'Metaspace',
      replacement: '▁',
      prepend_scheme: 'first',
      split: false,
    });
    assert.deepEqual(detectSpmLayout(t.tokenizerJson), { addSpacePrefix: true, exact: false });
    const m = await (await llama()).loadModel({
      modelPath: await vocabGguf(t, 'metaspace-first'),
      vocabOnly: true,
    });
    try {
      const off = mismatches(m, t, TEXTS);
      const expected = TEXTS.filter((s) => /^[ ▁]|(<s>|<\/s>|<unk>)(?!$)/.test(s));
      assert.deepEqual(off, expected);
    } finally {
      await m.dispose();
    }
  });
});

describe('vocabularies with no llama.cpp form are refused, naming why', () => {
  const w = () => new GgufWriter();

  test('a Unigram or WordPiece tokenizer.json names its model type', async () => {
    const unigram = Tokenizer.fromJson(
      {
        version: '1.0',
        added_tokens: [],
        normalizer: null,
        pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always' },
        post_processor: null,
        decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always' },
        model: {
          type: 'Unigram',
          unk_id: 0,
          vocab: [
            ['<unk>', 0],
            ['▁a', -1],
            ['b', -2],
            ['▁', -3],
            ['a', -4],
          ],
        },
      },
      { unk_token: '<unk>' },
      'unigram/tokenizer.json',
    );
    assert.throws(
      () => writeGgufTokenizer(w(), unigram, 8),
      (e: unknown) =>
        e instanceof FormatError &&
        /unigram\/tokenizer\.json: tokenizer model type 'Unigram' cannot be exported to GGUF/.test(
          e.message,
        ),
    );
    await assert.rejects(
      exportGguf(join(dir, 'unigram.gguf'), spec, CausalLM.random(spec, 1).weights, {
        tokenizer: unigram,
      }),
      /'Unigram' cannot be exported/,
    );
    assert.throws(
      () =>
        Tokenizer.fromJson(
          {
            model: { type: 'WordPiece', unk_token: '[UNK]', vocab: { '[UNK]': 0, a: 1 } },
          },
          {},
          'bert/tokenizer.json',
        ),
      /bert\/tokenizer\.json: tokenizer model type "WordPiece" is not supported/,
    );
  });

  test('byte-fallback BPEs whose merges no score order can express, or missing byte pieces', () => {
    const edit = (f: (j: { model: Record<string, unknown> }) => void) => {
      const j = JSON.parse(JSON.stringify(llama2Json));
      f(j);
      return Tokenizer.fromJson(j, tok.tokenizerConfig, 'edited/tokenizer.json');
    };
    // A join llama.cpp would make (two pieces of "▁t") without a merge.
    const noMerge = edit((j) => {
      j.model.merges = (j.model.merges as string[]).filter((m) => m !== '▁ t');
    });
    assert.throws(
      () => writeGgufTokenizer(w(), noMerge, 32000),
      /1 pairs of tokens join into a token without a merge \(e\.g\. '▁' \+ 't' → '▁t'\)/,
    );
    // Two merges making the same token, with other tokens' merges between them.
    const split = edit((j) => {
      const merges = j.model.merges as string[];
      const seen = new Set<string>();
      const second = merges.findIndex((m) => {
        const t = m.replace(' ', '');
        if (seen.has(t)) return true;
        seen.add(t);
        return false;
      });
      merges.push(...merges.splice(second, 1));
    });
    assert.throws(() => writeGgufTokenizer(w(), split, 32000), /not in token-score order/);
    const noByte = edit((j) => {
      const v = j.model.vocab as Record<string, number>;
      v['<0x41>x'] = v['<0x41>']!;
      delete v['<0x41>'];
    });
    assert.throws(() => writeGgufTokenizer(w(), noByte, 32000), /no '<0x41>' token/);
    const splitting = edit((j) => {
      (j as Record<string, unknown>).normalizer = null;
      (j as Record<string, unknown>).pre_tokenizer = {
        type: 'Metaspace',
        replacement: '▁',
        prepend_scheme: 'always',
        split: true,
      };
    });
    assert.throws(() => writeGgufTokenizer(w(), splitting, 32000), /split: false/);
    assert.throws(() => writeGgufTokenizer(w(), tok, 31999), /32000 tokens but the embedding/);
  });
});
