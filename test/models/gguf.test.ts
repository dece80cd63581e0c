import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ByteLevelBpe } from '../../src/models/bpe.ts';
import { parseHfConfig } from '../../src/models/config.ts';
import { GgufType, GgufWriter } from '../../src/models/gguf.ts';
import { exportGguf, importGguf } from '../../src/models/gguf-export.ts';
import { permuteRope } from '../../src/models/gguf-names.ts';
import {
  decodeGgml,
  dequantizeQ8_0,
  encodeGgml,
  GgmlType,
  quantizeQ8_0,
} from '../../src/models/gguf-quant.ts';
import { GgufReader } from '../../src/models/gguf-reader.ts';
import { detectPreTokenizer, writeGgufTokenizer } from '../../src/models/gguf-tokenizer.ts';
import { f16BitsToF32, f32ToF16Bits } from '../../src/models/half.ts';
import { tensorMapsEqual } from '../../src/models/tensor.ts';
import { trainTinyTokenizer } from '../../src/models/tiny.ts';
import { Tokenizer } from '../../src/models/tokenizer.ts';
import { FormatError } from '../../src/util/errors.ts';
import { noShared, sharedData } from '../helpers/shared.ts';
import { randomLlamaWeights } from './reference-llama.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-gguf-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let bpe: ByteLevelBpe;
let tokenizer: Tokenizer;
// The tokenizer is trained on FLAN text from ../shared/data; the suites using it skip without it.
before(() => {
  if (noShared) return;
  const texts = readFileSync(sharedData('FLAN', 'qasc_train.tsv'), 'utf8')
    .split('\n')
    .slice(0, 2000);
  ({ bpe, tokenizer } = trainTinyTokenizer(texts, 400));
});

const tinySpec = (extra: Record<string, unknown> = {}) =>
  parseHfConfig({
    model_type: 'llama',
    vocab_size: 400,
    hidden_size: 64,
    intermediate_size: 80,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 128,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    ...extra,
  });

describe('GGUF container', () => {
  test('metadata of every value type and tensors round-trip; dims are in ggml order', async () => {
    const w = new GgufWriter();
    w.set('t.u8', GgufType.UINT8, 255)
      .set('t.i8', GgufType.INT8, -128)
      .set('t.u16', GgufType.UINT16, 65535)
      .set('t.i16', GgufType.INT16, -32768)
      .set('t.u32', GgufType.UINT32, 4294967295)
      .set('t.i32', GgufType.INT32, -2147483648)
      .set('t.f32', GgufType.FLOAT32, 0.5)
      .set('t.bool', GgufType.BOOL, true)
      .set('t.str', GgufType.STRING, 'héllo ✓')
      .set('t.u64', GgufType.UINT64, 2n ** 64n - 1n)
      .set('t.i64', GgufType.INT64, -(2n ** 63n))
      .set('t.f64', GgufType.FLOAT64, Math.PI)
      .setArray('t.strs', GgufType.STRING, ['a', '', 'ç'])
      .setArray('t.i32s', GgufType.INT32, [1, -2, 3])
      .set('t.nested', GgufType.ARRAY, {
        elemType: GgufType.ARRAY,
        items: [
          { elemType: GgufType.UINT8, items: [1, 2] },
          { elemType: GgufType.UINT8, items: [] },
        ],
      });
    const a = Float32Array.from({ length: 3 * 64 }, (_, i) => i / 7);
    w.addTensor('a', [3, 64], GgmlType.F32, encodeGgml(a, GgmlType.F32));
    w.addTensor('b', [64], GgmlType.F16, encodeGgml(a.subarray(0, 64), GgmlType.F16));
    w.addTensor('c', [2, 64], GgmlType.Q8_0, encodeGgml(a.subarray(0, 128), GgmlType.Q8_0));
    const p = join(dir, 'kv.gguf');
    await w.write(p);
    const bytes = readFileSync(p);
    assert.equal(bytes.toString('latin1', 0, 4), 'GGUF');
    assert.equal(bytes.readUInt32LE(4), 3);
    assert.equal(bytes.readBigUInt64LE(8), 3n);
    assert.equal(bytes.readBigUInt64LE(16), 15n);
    const r = GgufReader.open(p);
    assert.equal(r.get('t.u8'), 255);
    assert.equal(r.get('t.i8'), -128);
    assert.equal(r.get('t.u16'), 65535);
    assert.equal(r.get('t.i16'), -32768);
    assert.equal(r.get('t.u32'), 4294967295);
    assert.equal(r.get('t.i32'), -2147483648);
    assert.equal(r.get('t.f32'), 0.5);
    assert.equal(r.get('t.bool'), true);
    assert.equal(r.get('t.str'), 'héllo ✓');
    assert.equal(r.get('t.u64'), 2n ** 64n - 1n);
    assert.equal(r.get('t.i64'), -(2n ** 63n));
    assert.equal(r.get('t.f64'), Math.PI);
    assert.deepEqual(r.array('t.strs'), ['a', '', 'ç']);
    assert.deepEqual(r.array('t.i32s'), [1, -2, 3]);
    assert.deepEqual(r.get('t.nested'), {
      elemType: GgufType.ARRAY,
      items: [
        { elemType: GgufType.UINT8, items: [1, 2] },
        { elemType: GgufType.UINT8, items: [] },
      ],
    });
    const ta = r.tensor('a');
    assert.deepEqual(ta.dims, [64, 3]);
    assert.deepEqual(ta.shape, [3, 64]);
    assert.equal(r.dataStart % 32, 0);
    for (const t of r.tensors) assert.equal(t.offset % 32, 0);
    assert.deepEqual(r.readF32('a'), a);
    assert.deepEqual(
      [...r.readF32('b')],
      [...a.subarray(0, 64)].map((x) => f16BitsToF32(f32ToF16Bits(x))),
    );
    assert.deepEqual(r.readF32('c'), dequantizeQ8_0(quantizeQ8_0(a.subarray(0, 128)), 128));
    r.close();
  });

  test('a non-default alignment is written to general.alignment and honoured', async () => {
    const w = new GgufWriter({ alignment: 64 });
    w.addTensor('x', [5], GgmlType.F32, encodeGgml(new Float32Array(5).fill(2), GgmlType.F32));
    w.addTensor('y', [3], GgmlType.F32, encodeGgml(new Float32Array(3).fill(3), GgmlType.F32));
    const p = join(dir, 'align.gguf');
    await w.write(p);
    const r = GgufReader.open(p);
    assert.equal(r.get('general.alignment'), 64);
    assert.equal(r.dataStart % 64, 0);
    assert.equal(r.tensor('y').offset, 64);
    assert.deepEqual([...r.readF32('y')], [3, 3, 3]);
    r.close();
  });

  test('q8_0: one block by hand (d = max|x|/127 as f16, q = round half away from zero)', () => {
    const x = new Float32Array(32);
    x[0] = 2.54;
    x[1] = -2.54;
    x[2] = 1.27; // x/d = 63.5 → 64 (away from zero)
    x[3] = -1.27; // → -64
    x[4] = 0.01; // 0.5 → 1
    x[5] = 0.3;
    const q = quantizeQ8_0(x);
    assert.equal(q.length, 34);
    const dv = new DataView(q.buffer);
    assert.equal(dv.getUint16(0, true), f32ToF16Bits(Math.fround(2.54) / 127));
    const qs = [...new Int8Array(q.buffer, 2, 32)];
    assert.deepEqual(qs.slice(0, 6), [127, -127, 64, -64, 1, 15]);
    assert.ok(qs.slice(6).every((v) => v === 0));
    const back = dequantizeQ8_0(q, 32);
    const d = f16BitsToF32(dv.getUint16(0, true));
    assert.equal(back[2], 64 * d);
    assert.throws(() => quantizeQ8_0(new Float32Array(33)), FormatError);
    assert.deepEqual(
      decodeGgml(encodeGgml(new Float32Array(32), GgmlType.Q8_0), GgmlType.Q8_0, 32),
      new Float32Array(32),
    );
  });

  test('RoPE row permutation: known order, and its inverse', () => {
    // One head of Dh = 4, one column: HF rows [a0 a1 | b0 b1] → llama.cpp [a0 b0 a1 b1].
    assert.deepEqual([...permuteRope(Float32Array.from([0, 1, 2, 3]), 1, 1)], [0, 2, 1, 3]);
    const w = Float32Array.from({ length: 8 * 8 * 3 }, (_, i) => i);
    assert.deepEqual(permuteRope(permuteRope(w, 8, 3), 8, 3, true), w);
  });
});

describe('GGUF export → import', { skip: noShared }, () => {
  test('llama f32: identical tensors, same spec and tokenizer', async () => {
    const spec = tinySpec({ eos_token_id: 2 });
    const w = randomLlamaWeights(spec, 3);
    const p = join(dir, 'rt-llama.gguf');
    await exportGguf(p, spec, w, { tokenizer, fileType: 'f32', name: 'tiny' });
    const r = GgufReader.open(p);
    assert.equal(r.get('general.architecture'), 'llama');
    assert.equal(r.get('general.file_type'), 0);
    assert.equal(r.get('llama.block_count'), 2);
    assert.equal(r.get('llama.attention.head_count_kv'), 2);
    assert.equal(r.get('llama.rope.dimension_count'), 16);
    assert.equal(r.get('tokenizer.ggml.model'), 'gpt2');
    assert.equal(r.get('tokenizer.ggml.pre'), 'gpt-2');
    assert.equal(r.get('tokenizer.ggml.eos_token_id'), 2);
    assert.equal(r.get('tokenizer.ggml.padding_token_id'), 3);
    assert.equal(r.get('tokenizer.ggml.add_bos_token'), false);
    assert.equal(r.array('tokenizer.ggml.tokens')?.length, 400);
    assert.deepEqual(r.array('tokenizer.ggml.token_type')?.slice(0, 5), [3, 3, 3, 3, 1]);
    assert.equal(r.array('tokenizer.ggml.merges')?.length, bpe.merges.length);
    assert.match(String(r.get('tokenizer.chat_template')), /im_start/);
    assert.ok(r.tensors.some((t) => t.name === 'output.weight'));
    // The stored q rows are the permuted HF rows.
    assert.deepEqual(
      r.readF32('blk.0.attn_q.weight'),
      permuteRope(w.get('model.layers.0.self_attn.q_proj.weight')!.data, 4, 64),
    );
    r.close();
    const back = await importGguf(p);
    assert.equal(back.arch, 'llama');
    assert.ok(tensorMapsEqual(back.tensors, w));
    for (const k of [
      'hiddenSize',
      'numLayers',
      'numHeads',
      'numKvHeads',
      'headDim',
      'intermediateSize',
      'vocabSize',
      'maxPositions',
      'normEps',
      'rope',
      'tieWordEmbeddings',
      'qkvBias',
    ] as const)
      assert.deepEqual(back.spec[k], spec[k], k);
    const text = '<|im_start|>user\nWhat comes from reproduction? 42 🙂<|im_end|>';
    assert.deepEqual(back.tokenizer?.encode(text), bpe.encode(text));
    assert.equal(back.tokenizer?.eos?.token, '<|im_end|>');
  });

  test('qwen2 tied with zero-filled biases; q8_0 imports as its dequantised values', async () => {
    const spec = tinySpec({ model_type: 'qwen2', tie_word_embeddings: true, rope_theta: 1e6 });
    const w = randomLlamaWeights(spec, 4);
    const p = join(dir, 'rt-qwen2.gguf');
    await exportGguf(p, spec, w, { tokenizer, fileType: 'q8_0' });
    const r = GgufReader.open(p);
    assert.equal(r.get('general.file_type'), 7);
    assert.equal(r.tensor('blk.0.attn_q.weight').type, GgmlType.Q8_0);
    // ffn_down rows have 80 values, not a whole number of 32-blocks: f16 fallback.
    assert.equal(r.tensor('blk.0.ffn_down.weight').type, GgmlType.F16);
    assert.equal(r.tensor('blk.0.ffn_up.weight').type, GgmlType.Q8_0);
    assert.equal(r.tensor('blk.0.attn_norm.weight').type, GgmlType.F32);
    assert.ok(!r.tensors.some((t) => t.name === 'output.weight'));
    r.close();
    const back = await importGguf(p);
    assert.equal(back.spec.modelType, 'qwen2');
    assert.equal(back.spec.tieWordEmbeddings, true);
    const q = w.get('model.layers.1.self_attn.q_proj.weight')!;
    assert.deepEqual(
      back.tensors.get('model.layers.1.self_attn.q_proj.weight')!.data,
      dequantizeQ8_0(quantizeQ8_0(q.data), q.data.length),
    );
    assert.deepEqual(
      back.tensors.get('model.layers.0.self_attn.q_proj.bias')!.data,
      w.get('model.layers.0.self_attn.q_proj.bias')!.data,
    );
  });

  test('export refuses what llama.cpp cannot represent, naming the tensor or setting', async () => {
    const spec = tinySpec();
    const w = randomLlamaWeights(spec, 5);
    const p = join(dir, 'bad.gguf');
    await assert.rejects(
      exportGguf(
        p,
        spec,
        new Map([...w, ['model.layers.0.extra.weight', { shape: [1], data: new Float32Array(1) }]]),
        { tokenizer },
      ),
      /'model\.layers\.0\.extra\.weight' has no place/,
    );
    const short = new Map(w);
    short.set('model.norm.weight', { shape: [63], data: new Float32Array(63) });
    await assert.rejects(
      exportGguf(p, spec, short, { tokenizer }),
      /'model\.norm\.weight' has shape \[63\]/,
    );
    await assert.rejects(
      exportGguf(
        p,
        parseHfConfig(
          JSON.parse(
            readFileSync(join(import.meta.dirname, '../fixtures/models/configs/gpt2.json'), 'utf8'),
          ),
        ),
        w,
        { tokenizer },
      ),
      /LLaMA family/,
    );
    const dyn = tinySpec({ rope_scaling: { rope_type: 'dynamic', factor: 2 } });
    await assert.rejects(exportGguf(p, dyn, w, { tokenizer }), /dynamic/);
  });
});

describe('GGUF tokenizer keys', { skip: noShared }, () => {
  test('pre-tokenizer names come from the tokenizer.json regex; an unknown regex is refused', async () => {
    assert.equal(detectPreTokenizer(bpe.toTokenizerJson()), 'gpt-2');
    const custom = bpe.toTokenizerJson();
    custom.pre_tokenizer = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: '\\w+|\\s' }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    };
    assert.equal(detectPreTokenizer(custom), null);
    const tok = Tokenizer.fromJson(custom, tokenizer.tokenizerConfig);
    assert.throws(
      () => writeGgufTokenizer(new GgufWriter(), tok, 400),
      /matches no llama\.cpp pre-tokenizer/,
    );
    // SentencePiece-style BPE (byte fallback) is written as the "llama" model: gguf-spm.test.ts.
    // More ids than embedding rows.
    assert.throws(
      () => writeGgufTokenizer(new GgufWriter(), tokenizer, 300),
      /400 tokens but the embedding has 300 rows/,
    );
  });
});

describe('GGUF hostile and broken files', { skip: noShared }, () => {
  async function good(): Promise<string> {
    const spec = tinySpec();
    const p = join(dir, `good-${Math.random().toString(36).slice(2)}.gguf`);
    await exportGguf(p, spec, randomLlamaWeights(spec, 6), { tokenizer, fileType: 'f32' });
    return p;
  }
  const rejects = (p: string, re: RegExp) =>
    assert.throws(
      () => GgufReader.open(p),
      (e: unknown) => e instanceof FormatError && re.test(e.message) && e.message.includes(p),
    );

  test('bad magic', async () => {
    const p = await good();
    const b = readFileSync(p);
    b.write('GGML', 0, 'latin1');
    writeFileSync(p, b);
    rejects(p, /bad magic/);
  });
  test('truncated tensor data names the tensor', async () => {
    const p = await good();
    const size = readFileSync(p).length;
    truncateSync(p, size - 100);
    rejects(p, /tensor 'output\.weight'.*truncated/);
    await assert.rejects(importGguf(p), FormatError);
  });
  test('truncated header', async () => {
    const p = await good();
    truncateSync(p, 5000);
    rejects(p, /truncated/);
  });
  test('unsupported version, absurd counts and lengths', async () => {
    const head = (version: number, nT: bigint, nKv: bigint, rest: Buffer = Buffer.alloc(0)) => {
      const b = Buffer.alloc(24);
      b.write('GGUF', 0, 'latin1');
      b.writeUInt32LE(version, 4);
      b.writeBigUInt64LE(nT, 8);
      b.writeBigUInt64LE(nKv, 16);
      const p = join(dir, `h-${Math.random().toString(36).slice(2)}.gguf`);
      writeFileSync(p, Buffer.concat([b, rest]));
      return p;
    };
    rejects(head(1, 0n, 0n), /version 1/);
    rejects(head(3, 2n ** 60n, 0n), /tensor_count/);
    rejects(head(3, 0n, 2n ** 40n), /metadata_kv_count/);
    // One key whose string length claims far more bytes than the file holds.
    const key = Buffer.alloc(8);
    key.writeBigUInt64LE(2n ** 50n);
    rejects(head(3, 0n, 1n, key), /length/);
    // One array of 2^40 u32 items.
    const arr = Buffer.alloc(8 + 1 + 4 + 4 + 8);
    arr.writeBigUInt64LE(1n, 0);
    arr.write('k', 8, 'latin1');
    arr.writeUInt32LE(GgufType.ARRAY, 9);
    arr.writeUInt32LE(GgufType.UINT32, 13);
    arr.writeBigUInt64LE(2n ** 40n, 17);
    rejects(head(3, 0n, 1n, arr), /array length/);
  });
});
