// External check of the engine's models: a small model with our own BPE tokenizer, trained for
// a few dozen steps through the engine, is exported to GGUF (llama with the Q/K permutation,
// and qwen2 with q/k/v biases), loaded by llama.cpp, and compared with instructkit's own
// forward: (b) the same greedy continuation for 12 prompts, (c) the same last-position logits
// within 1e-3 (f32). Trained weights are not i.i.d. noise: norms, biases and embeddings have
// structure a layout bug hidden by random weights could show up against.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ParamStore } from '../../src/engine/params.ts';
import { tensor } from '../../src/engine/runtime.ts';
import { createTrainer } from '../../src/engine/step.ts';
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

/** AdamW on rows of the texts (one example per row, padding in its own segment). */
async function train(lm: CausalLM, steps: number): Promise<{ first: number; last: number }> {
  const B = 8;
  const T = 40;
  const rows = texts.map((t) => tokenizer.encode(t).slice(0, T));
  const trainer = await createTrainer({
    build: lm.trainingBuilder(),
    params: ParamStore.create(lm.paramSpecs(), { seed: 0 }),
    optimizer: { type: 'adamw', learning_rate: 3e-3 },
    max_grad_norm: 1,
  });
  const losses: number[] = [];
  try {
    for (let step = 0; step < steps; step++) {
      const ids = new BigInt64Array(B * T);
      const pos = new BigInt64Array(B * T);
      const seg = new BigInt64Array(B * T).fill(1n);
      const tgt = new BigInt64Array(B * T).fill(-100n);
      for (let b = 0; b < B; b++) {
        const r = rows[(step * B + b) % rows.length]!;
        r.forEach((id, i) => {
          ids[b * T + i] = BigInt(id);
          pos[b * T + i] = BigInt(i);
          seg[b * T + i] = 0n;
          if (i + 1 < r.length) tgt[b * T + i] = BigInt(r[i + 1]!);
        });
      }
      const res = await trainer.step({
        input_ids: tensor('int64', [B, T], ids),
        position_ids: tensor('int64', [B, T], pos),
        segment_ids: tensor('int64', [B, T], seg),
        targets: tensor('int64', [B, T], tgt),
      });
      losses.push(res.loss);
    }
    const store = await trainer.readParams();
    lm.setWeights(new Map(lm.allWeights().map(([n]) => [n, store.get(n)])));
  } finally {
    await trainer.release();
  }
  return { first: losses[0]!, last: losses.at(-1)! };
}

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
      initializer_range: 0.02,
    });
    const lm = CausalLM.random(spec, family === 'llama' ? 11 : 12, tokenizer);
    if (family === 'qwen2') {
      for (const [n, t] of lm.weights)
        if (n.endsWith('.bias'))
          for (let i = 0; i < t.data.length; i++) t.data[i] = Math.sin(i + n.length) * 0.1;
    }
    const path = join(mkdtempSync(join(tmpdir(), 'ik-engine-gguf-')), `${family}.gguf`);

    test('training: a few dozen engine steps on the texts lower the loss', async () => {
      const { first, last } = await train(lm, 40);
      assert.ok(last < 0.6 * first, `loss ${first} → ${last}`);
      console.log(`# ${family}: training loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
    });

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
        let worst = 0;
        for (const p of prompts.slice(0, 4)) {
          const ids = tokenizer.encode(p);
          const ours = await lastLogits(lm, ids);
          const theirs = await llamaCppLogits(model, ids, spec.vocabSize);
          let max = 0;
          for (let t = 0; t < ours.length; t++)
            max = Math.max(max, Math.abs(ours[t]! - theirs[t]!));
          assert.ok(max < 1e-3, `${family} ${JSON.stringify(p)}: max |Δlogit| ${max}`);
          worst = Math.max(worst, max);
        }
        console.log(`# ${family} trained, f32: max |Δlogit| ${worst.toExponential(2)}`);
      } finally {
        await model.dispose();
      }
    });
  });
}
