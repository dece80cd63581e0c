// Gradient accumulation through trainSft: 4 sequences x 2 micro-batches per step is the same
// optimisation as 8 sequences x 1 on the same data (token-weighted mean loss, one clip of the
// summed gradient, one AdamW update), up to float rounding.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CausalLM } from '../../src/models/lm.ts';
import { parseSftConfig, trainSft } from '../../src/train/sft.ts';
import { smallSpec, tokenizer } from './tiny.ts';

// 64 examples of uneven lengths: 8 steps per epoch either way, so the runs see the same rows.
const data = Array.from({ length: 64 }, (_, i) => ({
  prompt: `Q${i}: what colour is item ${i}${' really'.repeat(i % 4)}?\nAnswer:`,
  completion: ` ${['red', 'blue', 'green'][i % 3]}${i % 5 === 0 ? ' and more' : ''}`,
}));

async function run(batch: number, accumulation: number) {
  const r = await trainSft(
    parseSftConfig({
      model_name_or_path: 'mem',
      train_file: 'mem',
      output_dir: mkdtempSync(join(tmpdir(), 'ik-accum-')),
      learning_rate: 5e-3,
      max_steps: 4,
      per_device_train_batch_size: batch,
      gradient_accumulation_steps: accumulation,
      max_length: 64,
      packing: false,
      weight_decay: 0.1,
      // Small enough that clipping acts: it must clip the accumulated gradient once.
      max_grad_norm: 0.5,
      warmup_steps: 1,
      logging_steps: 1,
      disable_tqdm: true,
      use_worker: false,
    }),
    { model: CausalLM.random(smallSpec(), 8, tokenizer), train: data },
  );
  return r;
}

const maxDiff = (a: CausalLM, b: CausalLM) => {
  let worst = 0;
  for (const [n, t] of a.weights) {
    const u = b.weights.get(n)!.data;
    t.data.forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - u[i]!));
    });
  }
  return worst;
};

test('batch 4 x accumulation 2 trains the same weights as batch 8 x 1', async () => {
  const acc = await run(4, 2);
  const big = await run(8, 1);
  assert.equal(acc.steps, 4);
  assert.equal(big.steps, 4);
  acc.logs.forEach((l, i) => {
    const m = big.logs[i]!;
    assert.equal(l.step, m.step);
    assert.ok(
      Math.abs(l.loss - m.loss) < 1e-5 * m.loss,
      `loss at ${l.step}: ${l.loss} vs ${m.loss}`,
    );
    assert.ok(
      Math.abs(l.grad_norm - m.grad_norm) < 1e-4 * m.grad_norm,
      `grad_norm at ${l.step}: ${l.grad_norm} vs ${m.grad_norm}`,
    );
  });
  assert.ok(
    acc.logs.some((l) => l.grad_norm > 0.5),
    'clipping was active',
  );
  const same = maxDiff(acc.model, big.model);
  assert.ok(same < 1e-5, `largest weight difference ${same}`);
  // Not a vacuous tolerance: one micro-batch of 4 per step is a different run.
  const small = await run(4, 1);
  const other = maxDiff(small.model, big.model);
  assert.ok(other > 100 * Math.max(same, 1e-7), `batch 4 x 1 differs by ${other}`);
});
