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

const readMetrics = (dir: string): StepLog[] =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

test('metrics JSONL: one line per logged step with the loss, learning rate, tokens/s and eval loss of the run', async () => {
  const cfg = (out: string, extra: Record<string, unknown> = {}) =>
    parseSftConfig({
      ...base(out),
      max_steps: 6,
      packing: false,
      warmup_steps: 2,
      lr_scheduler_type: 'linear',
      eval_steps: 2,
      use_worker: false,
      ...extra,
    });
  const deps = () => ({ model: CausalLM.random(smallSpec(), 2, tokenizer), train, eval: evalSet });
  const outA = tmp('metrics-a');
  const a = await trainSft(cfg(outA, { logging_steps: 1 }), deps());
  const linesA = readMetrics(outA);
  assert.deepEqual(linesA, JSON.parse(JSON.stringify(a.logs)), 'the file holds the returned logs');
  assert.deepEqual(
    linesA.map((l) => l.step),
    [1, 2, 3, 4, 5, 6],
  );
  // HF's linear schedule with 2 warmup steps over 6: the update of step s (1-based) uses
  // lr · min(1, (s − 1) / 2) during warmup, then lr · (6 − (s − 1)) / 4.
  const want = [0, 0.5, 1, 0.75, 0.5, 0.25].map((f) => f * 5e-3);
  linesA.forEach((l, i) => {
    assert.ok(Math.abs(l.learning_rate - want[i]!) < 1e-12, `learning_rate at ${l.step}`);
    // 48 unpacked examples in batches of 4: 12 steps per epoch.
    assert.ok(Math.abs(l.epoch - l.step / 12) < 1e-12);
    assert.ok(Number.isFinite(l.tokens_per_s) && l.tokens_per_s > 0, 'tokens/s');
    assert.ok(Number.isFinite(l.loss) && l.loss > 0 && Number.isFinite(l.grad_norm));
    assert.equal(l.eval_loss !== undefined, l.step % 2 === 0, `eval_loss at ${l.step}`);
    assert.deepEqual(
      Object.keys(l).sort(),
      [
        'epoch',
        'grad_norm',
        'learning_rate',
        'loss',
        'step',
        'tokens_per_s',
        ...(l.step % 2 === 0 ? ['eval_loss'] : []),
      ].sort(),
    );
  });
  assert.ok(linesA[5]!.loss < linesA[0]!.loss, 'the loss falls');

  // Logging every 3 steps: each line's loss is the mean over the steps since the last line.
  const outB = tmp('metrics-b');
  await trainSft(cfg(outB, { logging_steps: 3 }), deps());
  const linesB = readMetrics(outB);
  assert.deepEqual(
    linesB.map((l) => l.step),
    [2, 3, 4, 6],
  );
  const lossA = (from: number, to: number) =>
    linesA.slice(from - 1, to).reduce((s, l) => s + l.loss, 0) / (to - from + 1);
  const windows: [number, number][] = [
    [1, 2],
    [3, 3],
    [4, 4],
    [5, 6],
  ];
  linesB.forEach((l, i) => {
    assert.ok(Math.abs(l.loss - lossA(...windows[i]!)) < 1e-12, `windowed loss at ${l.step}`);
    assert.equal(l.learning_rate, linesA[l.step - 1]!.learning_rate);
    assert.equal(l.eval_loss, linesA[l.step - 1]!.eval_loss);
  });

  // Stopped after step 3 with a checkpoint at 2, then resumed: the file reads as one run,
  // each step once, with the uninterrupted run's values.
  const outC = tmp('metrics-c');
  await trainSft(cfg(outC, { logging_steps: 1, save_steps: 2 }), { ...deps(), stopAfter: 3 });
  assert.deepEqual(
    readMetrics(outC).map((l) => l.step),
    [1, 2, 3],
  );
  await trainSft(
    cfg(outC, { logging_steps: 1, save_steps: 2, resume_from_checkpoint: true }),
    deps(),
  );
  const linesC = readMetrics(outC);
  assert.deepEqual(
    linesC.map((l) => l.step),
    [1, 2, 3, 4, 5, 6],
  );
  const stable = (ls: StepLog[]) => ls.map(({ tokens_per_s: _, ...rest }) => rest);
  assert.deepEqual(stable(linesC), stable(linesA));
  // A fresh run in the same directory starts a new file.
  await trainSft(cfg(outC, { logging_steps: 3, max_steps: 3 }), deps());
  assert.deepEqual(
    readMetrics(outC).map((l) => l.step),
    [2, 3],
  );
});
