// A 2-layer LLaMA-style model trained for 200 steps by the engine (float32, one graph per step:
// forward, loss, backward, clipping, AdamW) follows torch's float64 loss curve from the same
// initial weights and data within 1e-4 relative at every step.
// Fixture: /usr/bin/python3 scripts/fixtures/llama_trajectory_torch.py
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ParamStore } from '../../src/engine/params.ts';
import { tensor } from '../../src/engine/runtime.ts';
import { createTrainer } from '../../src/engine/step.ts';
import { parseHfConfig } from '../../src/models/config.ts';
import { CausalLM } from '../../src/models/lm.ts';
import type { TensorMap } from '../../src/models/tensor.ts';
import { fixture } from '../helpers/shared.ts';

interface Fixture {
  config: {
    vocab: number;
    d: number;
    layers: number;
    heads: number;
    kv_heads: number;
    ffn: number;
    theta: number;
    eps: number;
  };
  train: {
    steps: number;
    batch: number;
    seq: number;
    lr: number;
    betas: [number, number];
    adam_eps: number;
    weight_decay: number;
    max_grad_norm: number;
  };
  data: { input_ids: number[][]; targets: number[][] }[];
  losses: number[];
  weights: Record<string, { shape: number[]; data: number[] }>;
}

test('200 training steps follow torch float64 within 1e-4 relative at every step', async () => {
  const fx = JSON.parse(
    readFileSync(fixture('engine', 'llama_trajectory.json'), 'utf8'),
  ) as Fixture;
  const c = fx.config;
  const spec = parseHfConfig({
    model_type: 'llama',
    vocab_size: c.vocab,
    hidden_size: c.d,
    intermediate_size: c.ffn,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kv_heads,
    max_position_embeddings: 64,
    rms_norm_eps: c.eps,
    rope_theta: c.theta,
    tie_word_embeddings: false,
  });
  const weights: TensorMap = new Map(
    Object.entries(fx.weights).map(([n, t]) => [
      n,
      { shape: t.shape, data: Float32Array.from(t.data) },
    ]),
  );
  const lm = new CausalLM(spec, weights);
  const trainer = await createTrainer({
    build: lm.trainingBuilder(),
    params: ParamStore.create(lm.paramSpecs(), { seed: 0 }),
    optimizer: {
      type: 'adamw',
      learning_rate: fx.train.lr,
      betas: fx.train.betas,
      eps: fx.train.adam_eps,
      weight_decay: fx.train.weight_decay,
    },
    max_grad_norm: fx.train.max_grad_norm,
  });
  const { batch: B, seq: T } = fx.train;
  const feeds = fx.data.map((d) => ({
    input_ids: tensor('int64', [B, T], BigInt64Array.from(d.input_ids.flat().map(BigInt))),
    position_ids: tensor(
      'int64',
      [B, T],
      BigInt64Array.from({ length: B * T }, (_, i) => BigInt(i % T)),
    ),
    segment_ids: tensor('int64', [B, T], new BigInt64Array(B * T)),
    targets: tensor('int64', [B, T], BigInt64Array.from(d.targets.flat().map(BigInt))),
  }));
  let worst = 0;
  try {
    for (let step = 0; step < fx.train.steps; step++) {
      const r = await trainer.step(feeds[step % feeds.length]!);
      const ref = fx.losses[step]!;
      const rel = Math.abs(r.loss - ref) / Math.abs(ref);
      worst = Math.max(worst, rel);
      assert.ok(
        rel < 1e-4,
        `step ${step + 1}: loss ${r.loss} vs torch ${ref} (relative ${rel.toExponential(2)})`,
      );
    }
  } finally {
    await trainer.release();
  }
  assert.ok(fx.losses.at(-1)! < fx.losses[0]! / 2, 'the reference run actually trains');
  process.stdout.write(
    `# worst relative loss error over ${fx.train.steps} steps: ${worst.toExponential(2)}\n`,
  );
});
