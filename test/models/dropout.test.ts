// Model dropout (GPT-2's embd_pdrop / resid_pdrop / attn_pdrop, LLaMA's attention_dropout) in
// the training forward: on only with modelDropout and a fed seed, reproducible under the seed,
// and absent from inference graphs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Graph, type Var } from '../../src/engine/graph.ts';
import { ParamStore } from '../../src/engine/params.ts';
import { createSession, type Tensor, tensor } from '../../src/engine/runtime.ts';
import { createTrainer } from '../../src/engine/step.ts';
import { type ModelSpec, parseHfConfig } from '../../src/models/config.ts';
import { lastLogits } from '../../src/models/generate.ts';
import { trainingNeedsDropoutSeed } from '../../src/models/graphs.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { tinyLlamaConfig } from '../../src/models/tiny.ts';

const gpt2 = parseHfConfig({
  model_type: 'gpt2',
  vocab_size: 61,
  n_positions: 32,
  n_embd: 16,
  n_layer: 2,
  n_head: 2,
  resid_pdrop: 0.1,
  embd_pdrop: 0.1,
  attn_pdrop: 0.1,
});
// LLaMA has no embedding / residual dropout: attention_dropout alone must take effect.
const llama: ModelSpec = {
  ...tinyLlamaConfig({ vocabSize: 61, maxPositions: 32 }),
  hiddenSize: 16,
  intermediateSize: 32,
  numLayers: 2,
  numHeads: 2,
  numKvHeads: 1,
  headDim: 8,
  attentionDropout: 0.2,
};

const B = 2;
const T = 12;
function batch(): Record<string, Tensor> {
  const ids = BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 7 + 3) % 61));
  const pos = BigInt64Array.from({ length: B * T }, (_, i) => BigInt(i % T));
  const seg = new BigInt64Array(B * T);
  const tgt = BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 7 + 10) % 61));
  return {
    input_ids: tensor('int64', [B, T], ids),
    position_ids: tensor('int64', [B, T], pos),
    segment_ids: tensor('int64', [B, T], seg),
    targets: tensor('int64', [B, T], tgt),
  };
}

/** A session computing the training loss; returns loss(seed) (seed ignored without dropout). */
async function lossFn(spec: ModelSpec, modelDropout: boolean) {
  const lm = CausalLM.random(spec, 3);
  const g = new Graph({ name: 'train-forward' });
  const params: Record<string, Var> = {};
  for (const [n, t] of lm.allWeights()) params[n] = g.input(n, 'float32', t.shape);
  const { loss } = lm.trainingBuilder({ modelDropout })(g, params);
  g.output('loss', loss);
  const hasSeed = g.inputs.some((v) => v.name === 'dropout_seed');
  const s = await createSession(g, { threads: 1 });
  const feeds: Record<string, Tensor> = {
    ...Object.fromEntries(lm.allWeights().map(([n, t]) => [n, tensor('float32', t.shape, t.data)])),
    ...batch(),
  };
  const run = async (seed: number) => {
    const f = hasSeed
      ? { ...feeds, dropout_seed: tensor('int64', [], BigInt64Array.of(BigInt(seed))) }
      : feeds;
    return ((await s.run(f)).loss!.data as Float32Array)[0]!;
  };
  return { run, hasSeed, lm };
}

for (const [name, spec] of [
  ['GPT-2 (embd, resid, attn)', gpt2],
  ['LLaMA (attention_dropout)', llama],
] as const) {
  test(`${name} dropout: on by option, reproducible under a seed, off by default`, async () => {
    assert.equal(trainingNeedsDropoutSeed(spec, {}), false);
    assert.equal(trainingNeedsDropoutSeed(spec, { modelDropout: true }), true);
    const off = await lossFn(spec, false);
    const on = await lossFn(spec, true);
    assert.equal(off.hasSeed, false, 'no dropout_seed input by default');
    assert.equal(on.hasSeed, true);
    const plain = await off.run(0);
    const a = await on.run(1);
    assert.notEqual(a, plain, 'dropout changes the training loss');
    assert.equal(await on.run(1), a, 'same seed, same loss');
    assert.notEqual(await on.run(2), a, 'another seed, another loss');
  });
}

test('a model with zero rates has no dropout seed even with modelDropout', () => {
  const zero = { ...gpt2, embdDropout: 0, residDropout: 0, attentionDropout: 0 };
  assert.equal(trainingNeedsDropoutSeed(zero, { modelDropout: true }), false);
});

test('inference is unaffected by the dropout rates', async () => {
  // Same weights, rates 0 vs the GPT-2 defaults: decoding never applies dropout.
  const lm = CausalLM.random(gpt2, 4);
  const zero = new CausalLM(
    { ...gpt2, embdDropout: 0, residDropout: 0, attentionDropout: 0 },
    lm.weights,
  );
  const ids = [1, 5, 9, 2];
  assert.deepEqual(await lastLogits(lm, ids), await lastLogits(zero, ids));
});

test('gradient checkpointing recomputes the same dropout masks', async () => {
  // A recomputed block must draw the masks of its forward, or its gradients would be wrong.
  const lm = CausalLM.random(gpt2, 7);
  const feeds = { ...batch(), dropout_seed: tensor('int64', [], BigInt64Array.of(9n)) };
  const step = async (recompute: boolean) => {
    const trainer = await createTrainer({
      build: lm.trainingBuilder({ modelDropout: true, recompute }),
      params: ParamStore.create(lm.paramSpecs(), { seed: 0 }),
      optimizer: { type: 'sgd', learning_rate: 0.1 },
    });
    try {
      const r = await trainer.step(feeds);
      return { loss: r.loss, gradNorm: r.gradNorm };
    } finally {
      await trainer.release();
    }
  };
  const plain = await step(false);
  const recomputed = await step(true);
  assert.ok(
    Math.abs(plain.loss - recomputed.loss) < 1e-6 * plain.loss,
    JSON.stringify({ plain, recomputed }),
  );
  assert.ok(
    Math.abs(plain.gradNorm - recomputed.gradNorm) < 1e-4 * plain.gradNorm,
    JSON.stringify({ plain, recomputed }),
  );
});
