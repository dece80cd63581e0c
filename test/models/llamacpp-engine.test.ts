// External check of the engine's models: a model with our own BPE tokenizer is exported to GGUF
// (llama with the Q/K permutation, and qwen2 with q/k/v biases), loaded by llama.cpp, and
// compared with instructkit's own forward: (b) the same greedy continuation for 12 prompts,
// (c) the same last-position logits within 1e-3 (f32).
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseHfConfig } from '../../src/models/config.ts';
import { generate, lastLogits } from '../../src/models/generate.ts';
import { exportGguf } from '../../src/models/gguf-export.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { trainTinyTokenizer } from '../../src/models/tiny.ts';
import { llama, llamaCppGreedy, llamaCppLogits } from '../helpers/llamacpp.ts';

const texts = Array.from(
  { length: 200 },
  (_, i) =>
    `Line ${i}: the quick brown fox ${i % 7} jumps over ${i % 5} lazy dogs, said the ${['cat', 'owl', 'frog'][i % 3]}.`,
);
const { tokenizer } = trainTinyTokenizer(texts, 384);
const prompts = [
  'Line 3: the quick',
  'the owl',
  'Line 12',
  'jumps over',
  'lazy dogs, said',
  'brown fox 4',
  'Line 100: the',
  'said the frog',
  'over 2 lazy',
  'quick brown',
  'the cat',
  'Line 7',
];

for (const family of ['llama', 'qwen2'] as const) {
  describe(`${family} export: instructkit engine vs llama.cpp`, () => {
    const spec = parseHfConfig({
      model_type: family,
      vocab_size: 384,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 128,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: family === 'qwen2',
      // Larger weights than usual give peaked, tie-free logits, so greedy equality is meaningful.
      initializer_range: 0.15,
    });
    const lm = CausalLM.random(spec, family === 'llama' ? 11 : 12, tokenizer);
    if (family === 'qwen2') {
      for (const [n, t] of lm.weights)
        if (n.endsWith('.bias'))
          for (let i = 0; i < t.data.length; i++) t.data[i] = Math.sin(i + n.length) * 0.1;
    }
    const path = join(mkdtempSync(join(tmpdir(), 'ik-engine-gguf-')), `${family}.gguf`);

    test('(b) the same greedy continuation for 12 prompts', async () => {
      await exportGguf(path, spec, lm.weights, { tokenizer, fileType: 'f32', arch: family });
      const model = await (await llama()).loadModel({ modelPath: path });
      try {
        const ours = await generate(lm, prompts, { max_new_tokens: 6, stop_token_ids: [] });
        for (let i = 0; i < prompts.length; i++) {
          const ids = tokenizer.encode(prompts[i]!);
          const theirs = await llamaCppGreedy(model, ids, spec.vocabSize, 6);
          assert.deepEqual(ours[i]!.tokens, theirs, `prompt ${JSON.stringify(prompts[i])}`);
        }
      } finally {
        await model.dispose();
      }
    });

    test('(c) last-position logits agree within 1e-3', async () => {
      const model = await (await llama()).loadModel({ modelPath: path });
      try {
        for (const p of prompts.slice(0, 4)) {
          const ids = tokenizer.encode(p);
          const ours = await lastLogits(lm, ids);
          const theirs = await llamaCppLogits(model, ids, spec.vocabSize);
          let max = 0;
          for (let t = 0; t < ours.length; t++)
            max = Math.max(max, Math.abs(ours[t]! - theirs[t]!));
          assert.ok(max < 1e-3, `${family} ${JSON.stringify(p)}: max |Δlogit| ${max}`);
        }
      } finally {
        await model.dispose();
      }
    });
  });
}
