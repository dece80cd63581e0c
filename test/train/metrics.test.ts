// What the trainer reports: eval loss every eval_steps (equal to scoring the eval set directly
// with the weights of that step) and the metrics JSONL (one line per logged step, matching the
// returned logs, the learning-rate schedule, the loss of each step and a resumed run).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CausalLM } from '../../src/models/lm.ts';
import { parseSftConfig, type StepLog, trainSft } from '../../src/train/sft.ts';
import { directLoss, pairs, pairTokens, smallSpec, snapshot, tokenizer } from './tiny.ts';

const tmp = (p: string) => mkdtempSync(join(tmpdir(), `ik-${p}-`));
const train = pairs.slice(0, 48);
const evalSet = pairs.slice(48);
const base = (out: string) => ({
  model_name_or_path: 'mem',
  train_file: 'mem',
  output_dir: out,
  learning_rate: 5e-3,
  max_steps: 7,
  per_device_train_batch_size: 4,
  max_length: 64,
  packing: true,
  disable_tqdm: true,
});

test('eval loss is logged every eval_steps and at the end, and equals scoring the eval set directly', async () => {
  const model = CausalLM.random(smallSpec(), 1, tokenizer);
  const at = new Map<number, CausalLM>();
  const r = await trainSft(
    parseSftConfig({ ...base(tmp('evalloss')), logging_steps: 2, eval_steps: 3, use_worker: true }),
    {
      model,
      train,
      eval: evalSet,
      // The trainer has just copied its weights into the model when it logs an eval loss.
      onLog: (l) => {
        if (l.eval_loss !== undefined) at.set(l.step, snapshot(model));
      },
    },
  );
  assert.deepEqual(
    r.logs.map((l) => l.step),
    [2, 3, 4, 6, 7],
    'logging steps, eval steps and the last step',
  );
  assert.deepEqual(
    r.logs.filter((l) => l.eval_loss !== undefined).map((l) => l.step),
    [3, 6, 7],
  );
  const evalTokens = evalSet.map((p) => pairTokens(p.prompt, p.completion));
  const seen: number[] = [];
  for (const l of r.logs.filter((x) => x.eval_loss !== undefined)) {
    const want = await directLoss(at.get(l.step)!, evalTokens);
    assert.ok(
      Math.abs(l.eval_loss! - want) < 1e-4 * want,
      `step ${l.step}: eval_loss ${l.eval_loss} vs direct ${want}`,
    );
    seen.push(want);
  }
  assert.ok(seen[2]! < seen[0]!, 'the eval loss falls as training goes on');
  assert.equal(r.evalLoss, r.logs[r.logs.length - 1]!.eval_loss);
  // Before training, the untouched model scores higher still.
  const init = await directLoss(CausalLM.random(smallSpec(), 1, tokenizer), evalTokens);
  assert.ok(init > seen[0]!);
});
