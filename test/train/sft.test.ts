import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Graph } from '../../src/engine/graph.ts';
import { createSession, tensor } from '../../src/engine/runtime.ts';
import { saveCheckpoint } from '../../src/models/checkpoint.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../../src/models/tiny.ts';
import { batchFeeds, packExamples, tokenizePair } from '../../src/train/data.ts';
import { parseSftConfig, trainSft } from '../../src/train/sft.ts';
import { ConfigError, TrainingError } from '../../src/util/errors.ts';
import { readMetrics, resumeRun, runAndKill } from '../helpers/kill-resume.ts';
import { repoRoot } from '../helpers/shared.ts';

const corpus = Array.from(
  { length: 60 },
  (_, i) => `Fact ${i}: the colour of item ${i} is ${['red', 'blue', 'green'][i % 3]}.`,
);
const { tokenizer } = trainTinyTokenizer(corpus, 400);
const eos = tokenizer.eos!.id;
const smallSpec = () => {
  const base = tinyLlamaConfig({
    vocabSize: 400,
    eosTokenId: eos,
    padTokenId: tokenizer.pad!.id,
    maxPositions: 64,
  });
  return {
    ...base,
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 16,
  };
};
const pairs = corpus.map((c, i) => ({
  prompt: `Q${i}: what colour?\nAnswer:`,
  completion: ` ${c.split(' is ')[1]!.slice(0, -1)}`,
}));
const tmp = (p: string) => mkdtempSync(join(tmpdir(), `ik-${p}-`));

test('loss mask covers exactly the completion tokens and the EOS', () => {
  const ex = tokenizePair(tokenizer, 'Q: colour?\nAnswer:', ' red', { eosId: eos });
  const p = tokenizer.encode('Q: colour?\nAnswer:', { addSpecialTokens: false });
  const c = tokenizer.encode(' red', { addSpecialTokens: false });
  assert.deepEqual(ex.ids, [...p, ...c, eos]);
  assert.deepEqual(ex.lossMask, [...p.map(() => 0), ...c.map(() => 1), 1]);
  const { rows } = packExamples([ex], 64, false);
  const r = rows[0]!;
  // Targets predict the next token, only where that token is in the loss.
  for (let i = 0; i < r.ids.length; i++) {
    const want = i + 1 < r.ids.length && ex.lossMask[i + 1] === 1 ? ex.ids[i + 1] : -100;
    assert.equal(r.targets[i], want, `position ${i}`);
  }
  assert.equal(r.targets.filter((t) => t !== -100).length, c.length + 1);
  assert.equal(r.targets[r.targets.length - 2], eos, 'EOS is a target');
  assert.throws(() => tokenizePair(tokenizer, 'Q', '', { eosId: eos }), TrainingError);
});

test("packing isolates examples: changing one does not change another one's log-probs", async () => {
  const lm = CausalLM.random(smallSpec(), 3, tokenizer);
  const g = new Graph({ name: 'packed-forward' });
  const params: Record<string, ReturnType<Graph['input']>> = {};
  for (const [n, t] of lm.allWeights()) params[n] = g.input(n, 'float32', t.shape);
  const { outputs } = lm.trainingBuilder({ tokenLogprobs: true })(g, params);
  g.output('lp', outputs!.token_logprobs!);
  const s = await createSession(g);
  const weights = Object.fromEntries(
    lm.allWeights().map(([n, t]) => [n, tensor('float32', t.shape, t.data)]),
  );
  const a = tokenizePair(tokenizer, 'Q1: what colour?\nAnswer:', ' red', { eosId: eos });
  const b1 = tokenizePair(tokenizer, 'Q2: what colour?\nAnswer:', ' blue', { eosId: eos });
  const b2 = tokenizePair(tokenizer, 'Q9 entirely different text here\nAnswer:', ' green green', {
    eosId: eos,
  });
  const run = async (b: typeof a) => {
    const { rows } = packExamples([a, b], 64, true);
    assert.equal(rows.length, 1, 'both fit in one row');
    const row = rows[0]!;
    const f = batchFeeds([row], tokenizer.pad!.id, 64);
    const out = await s.run({ ...weights, ...f.feeds }, ['lp']);
    const lp = out.lp!.data as Float32Array;
    // the values at a's positions (a is packed first: it is the longer? find by segment)
    const seg = row.segments;
    const segA = row.ids.slice(0, a.ids.length).join(',') === a.ids.join(',') ? 0 : 1;
    return Array.from(lp.slice(0, row.ids.length)).filter((_, i) => seg[i] === segA);
  };
  const x = await run(b1);
  const y = await run(b2);
  assert.ok(x.some((v) => v !== 0));
  assert.deepEqual(x, y);
});

test('bad configs name the key', () => {
  assert.throws(
    () =>
      parseSftConfig({
        model_name_or_path: 'm',
        train_file: 't',
        output_dir: 'o',
        learnin_rate: 1,
      }),
    (e: unknown) =>
      e instanceof ConfigError && e.field === 'learnin_rate' && /unknown key/.test(e.message),
  );
  assert.throws(
    () =>
      parseSftConfig({
        model_name_or_path: 'm',
        train_file: 't',
        output_dir: 'o',
        learning_rate: 'fast',
      }),
    (e: unknown) => e instanceof ConfigError && e.field === 'learning_rate',
  );
  assert.throws(
    () => parseSftConfig({ train_file: 't', output_dir: 'o' }),
    (e: unknown) => e instanceof ConfigError && e.field === 'model_name_or_path',
  );
});

const cfgBase = (out: string) => ({
  model_name_or_path: 'mem',
  train_file: 'mem',
  output_dir: out,
  learning_rate: 5e-3,
  max_steps: 8,
  per_device_train_batch_size: 4,
  max_length: 64,
  packing: true,
  logging_steps: 1,
  save_steps: 3,
  disable_tqdm: true,
  use_worker: false,
});

test('training moves every weight, and resuming from a checkpoint gives the same weights', async () => {
  const full = await trainSft(parseSftConfig(cfgBase(tmp('sft-full'))), {
    model: CausalLM.random(smallSpec(), 1, tokenizer),
    train: pairs,
  });
  assert.ok(full.logs[full.logs.length - 1]!.loss < full.logs[0]!.loss, 'the loss falls');
  const init = CausalLM.random(smallSpec(), 1, tokenizer);
  for (const [n, t] of full.model.weights)
    assert.ok(
      t.data.some((v, i) => v !== init.weights.get(n)!.data[i]),
      `${n} moved`,
    );
  const out = tmp('sft-resume');
  await trainSft(parseSftConfig(cfgBase(out)), {
    model: CausalLM.random(smallSpec(), 1, tokenizer),
    train: pairs,
    stopAfter: 5,
  });
  assert.ok(existsSync(join(out, 'checkpoint-3', 'optimizer.safetensors')));
  const resumed = await trainSft(
    parseSftConfig({ ...cfgBase(out), resume_from_checkpoint: true }),
    { model: CausalLM.random(smallSpec(), 1, tokenizer), train: pairs },
  );
  for (const [n, t] of full.model.weights)
    assert.deepEqual(resumed.model.weights.get(n)!.data, t.data, n);
});

test('kill -9 during `instructkit sft`, then --resume-from-checkpoint: same final weights', async () => {
  const dir = tmp('sft-kill');
  const model = join(dir, 'model');
  await saveCheckpoint(model, {
    spec: smallSpec(),
    tensors: CausalLM.random(smallSpec(), 5, tokenizer).weights,
    tokenizer,
    generationConfig: null,
  });
  writeFileSync(join(dir, 'train.jsonl'), `${pairs.map((p) => JSON.stringify(p)).join('\n')}\n`);
  // Long enough after the first checkpoint that the kill lands mid-run.
  const cfg = (out: string) => ({
    ...cfgBase(out),
    model_name_or_path: model,
    train_file: join(dir, 'train.jsonl'),
    max_steps: 16,
    save_steps: 4,
    use_worker: true,
  });
  writeFileSync(join(dir, 'ref.yaml'), JSON.stringify(cfg(join(dir, 'ref'))));
  writeFileSync(join(dir, 'run.yaml'), JSON.stringify(cfg(join(dir, 'run'))));
  const { run, kept } = await runAndKill({
    command: 'sft',
    dir,
    cwd: repoRoot,
    checkpoint: 4,
    totalSteps: 16,
  });
  const logged = readMetrics;
  const before = logged(join(run, 'metrics.jsonl')).filter((l) => l.step <= kept);

  await resumeRun({ command: 'sft', dir, cwd: repoRoot });
  // It resumed rather than started over: the steps up to the checkpoint keep the killed run's
  // log lines (their tokens/s are timings a rerun would not reproduce).
  const after = logged(join(run, 'metrics.jsonl'));
  assert.deepEqual(after.slice(0, before.length), before);
  assert.deepEqual(
    after.map((l) => l.step),
    Array.from({ length: 16 }, (_, i) => i + 1),
  );
  assert.ok(
    readFileSync(join(run, 'model.safetensors')).equals(
      readFileSync(join(dir, 'ref', 'model.safetensors')),
    ),
    'resumed weights equal the uninterrupted run bit for bit',
  );
});
