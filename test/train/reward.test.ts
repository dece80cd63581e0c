// Reward model: the K-way ranking loss against torch (scripts/fixtures/reward_torch.py →
// reward_torch.json), known answers, gradient checks (the loss alone in float64, and the whole
// model's loss through the engine), classifier save/load through safetensors, the LoRA adapter
// with the head in modules_to_save, training, scoring, normalisation and bad input.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { grad } from '../../src/engine/autodiff.ts';
import { checkOp } from '../../src/engine/gradcheck.ts';
import { Graph, type Var } from '../../src/engine/graph.ts';
import { createSession, tensor } from '../../src/engine/runtime.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { RewardModel, SCORE_BIAS_KEY } from '../../src/models/reward.ts';
import { SafetensorsReader } from '../../src/models/safetensors.ts';
import {
  batchPairs,
  evaluateReward,
  normalizeReward,
  parseRewardConfig,
  rankingLoss,
  rewardCollate,
  rewardForward,
  scoreFile,
  trainReward,
} from '../../src/train/reward.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { fixture } from '../helpers/shared.ts';
import { smallSpec, tokenizer } from './tiny.ts';

interface Case {
  name: string;
  ranks: number[][];
  margins: number[];
  center_rewards_coefficient: number | null;
  scores: number[][];
  loss: number;
  grad: number[][];
  accuracy: number;
  margin: number;
}
const cases = (
  JSON.parse(readFileSync(fixture('train', 'reward_torch.json'), 'utf8')) as { cases: Case[] }
).cases;

/** Loss, d loss / d scores and metrics of rankingLoss on given scores, in `dtype`. */
async function runLoss(
  scores: number[],
  items: { ranks: number[]; margin?: number }[],
  coef: number | null,
  dtype: 'float32' | 'float64' = 'float64',
): Promise<{ loss: number; grad: number[]; accuracy: number; margin: number }> {
  const p = batchPairs(items);
  const P = p.chosen.length;
  const g = new Graph({ name: 'rank-loss' });
  const s = g.input('s', dtype, [scores.length]);
  const c = g.input('c', 'int64', [P]);
  const r = g.input('r', 'int64', [P]);
  const w = g.input('w', dtype, [P]);
  const m = g.input('m', dtype, [P]);
  const out = rankingLoss(s, { chosen: c, rejected: r, weight: w, margin: m }, coef);
  const [ds] = grad(out.loss, [s]) as [Var];
  g.output('loss', out.loss);
  g.output('ds', ds);
  g.output('accuracy', out.outputs.accuracy);
  g.output('margin', out.outputs.margin);
  const sess = await createSession(g);
  const F = dtype === 'float64' ? Float64Array : Float32Array;
  const res = await sess.run({
    s: tensor(dtype, [scores.length], F.from(scores) as Float64Array),
    c: tensor('int64', [P], BigInt64Array.from(p.chosen, BigInt)),
    r: tensor('int64', [P], BigInt64Array.from(p.rejected, BigInt)),
    w: tensor(dtype, [P], F.from(p.weight) as Float64Array),
    m: tensor(dtype, [P], F.from(p.margin) as Float64Array),
  });
  await sess.release();
  const num = (k: string) => Number((res[k]!.data as Float64Array)[0]);
  return {
    loss: num('loss'),
    grad: [...(res.ds!.data as Float64Array)].map(Number),
    accuracy: num('accuracy'),
    margin: num('margin'),
  };
}

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${what}: ${a} vs ${b}`);

test('ranking loss and its gradient w.r.t. the K scores match torch (K=4 with a tie, margins, centring, mixed K in one batch)', async () => {
  assert.ok(cases.length >= 4);
  for (const c of cases) {
    const items = c.ranks.map((ranks, i) => ({ ranks, margin: c.margins[i] }));
    const got = await runLoss(c.scores.flat(), items, c.center_rewards_coefficient);
    close(got.loss, c.loss, 1e-12, `${c.name} loss`);
    c.grad.flat().forEach((want, i) => {
      close(got.grad[i]!, want, 1e-12, `${c.name} grad[${i}]`);
    });
    close(got.accuracy, c.accuracy, 1e-12, `${c.name} accuracy`);
    close(got.margin, c.margin, 1e-12, `${c.name} margin`);
    // The training dtype agrees to float32 precision.
    const f32 = await runLoss(c.scores.flat(), items, c.center_rewards_coefficient, 'float32');
    close(f32.loss, c.loss, 1e-6, `${c.name} float32 loss`);
  }
  // The K=4 tie case has 5 pairs, not C(4,2) = 6: the tie gives none.
  assert.equal(batchPairs([{ ranks: [1, 0, 2, 1] }]).chosen.length, 5);
});

test('known answer: equal scores give loss ln 2, accuracy 0 (strict) and gradient ±½ per pair', async () => {
  const r = await runLoss([0.3, 0.3], [{ ranks: [0, 1] }], null);
  close(r.loss, Math.LN2, 1e-15, 'loss');
  assert.equal(r.accuracy, 0);
  assert.equal(r.margin, 0);
  close(r.grad[0]!, -0.5, 1e-15, 'grad chosen');
  close(r.grad[1]!, 0.5, 1e-15, 'grad rejected');
  // K = 4 with all different ranks and equal scores: each of the 6 pairs contributes ln 2 / 6.
  const k4 = await runLoss([1, 1, 1, 1], [{ ranks: [3, 0, 2, 1] }], null);
  close(k4.loss, Math.LN2, 1e-15, 'K=4 loss');
  // Large gaps stay finite in float32 (no overflow of e^x in either branch).
  const far = await runLoss([-200, 200], [{ ranks: [0, 1] }], null, 'float32');
  close(far.loss, 400, 1e-6, 'far loss');
  close(far.grad[0]!, -1, 1e-6, 'far grad');
});

test('gradient check of the ranking loss (finite differences, float64)', async () => {
  const items = [{ ranks: [0, 1] }, { ranks: [2, 0, 1, 1], margin: 0.3 }, { ranks: [1, 0, 1] }];
  const p = batchPairs(items);
  const P = p.chosen.length;
  for (const coef of [null, 0.05]) {
    await checkOp(
      `ranking-loss-${coef}`,
      [
        { shape: [9] },
        { shape: [P], dtype: 'int64', values: p.chosen },
        { shape: [P], dtype: 'int64', values: p.rejected },
        { shape: [P], values: p.weight, grad: false },
        { shape: [P], values: p.margin },
      ],
      (s, c, r, w, m) =>
        rankingLoss(s, { chosen: c, rejected: r, weight: w, margin: m }, coef).loss.reshape([1]),
    );
  }
});

function tinyRm(seed = 0): RewardModel {
  return RewardModel.fromCausalLM(CausalLM.random(smallSpec(), seed, tokenizer), seed);
}

test('gradient check of the whole model loss through the engine (directional finite differences)', async () => {
  const rm = tinyRm(3);
  const enc = (s: string) => tokenizer.encode(s, { addSpecialTokens: false });
  const items = [
    {
      prompt: enc('Q1: colour?'),
      completions: [enc(' red'), enc(' blue x'), enc(' no')],
      ranks: [0, 1, 1],
    },
    { prompt: enc('Q2: what?'), completions: [enc(' green'), enc(' red')], ranks: [1, 0] },
  ];
  const b = rewardCollate(items, tokenizer.pad!.id, 64);
  const build = rewardForward(rm.spec, {});
  const names = [
    'score.weight',
    'model.layers.1.mlp.down_proj.weight',
    'model.embed_tokens.weight',
  ];
  const g = new Graph({ name: 'rm-grad' });
  const params: Record<string, Var> = {};
  for (const [n, t] of rm.allWeights()) params[n] = g.input(n, 'float32', t.shape);
  const { loss } = build(g, params);
  g.output('loss', loss);
  const ds = grad(
    loss,
    names.map((n) => params[n]!),
  ) as Var[];
  ds.forEach((d, i) => {
    g.output(`d${i}`, d);
  });
  const sess = await createSession(g);
  const run = async () => {
    const feeds: Record<string, ReturnType<typeof tensor>> = { ...b.feeds };
    for (const [n, t] of rm.allWeights()) feeds[n] = tensor('float32', t.shape, t.data);
    return sess.run(feeds);
  };
  const base = await run();
  for (const [i, name] of names.entries()) {
    const t = rm.weights.get(name)!;
    const gi = base[`d${i}`]!.data as Float32Array;
    // Direction: the gradient itself (largest signal), so <g, v> = |g|².
    let dot = 0;
    for (const v of gi) dot += v * v;
    const eps = 1e-2 / Math.sqrt(dot);
    const orig = t.data.slice();
    for (let k = 0; k < orig.length; k++) t.data[k] = orig[k]! + eps * gi[k]!;
    const lp = Number((await run()).loss!.data[0]);
    for (let k = 0; k < orig.length; k++) t.data[k] = orig[k]! - eps * gi[k]!;
    const lm = Number((await run()).loss!.data[0]);
    t.data.set(orig);
    const numeric = (lp - lm) / (2 * eps);
    assert.ok(dot > 0, `${name}: zero gradient`);
    close(numeric, dot, 2e-2, `${name} directional derivative`);
  }
  await sess.release();
});

test('save / load as LlamaForSequenceClassification: score.weight and config round-trip exactly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rm-save-'));
  const rm = tinyRm(1);
  rm.bias = -0.125;
  await rm.save(dir);
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.deepEqual(cfg.architectures, ['LlamaForSequenceClassification']);
  assert.equal(cfg.num_labels, 1);
  assert.deepEqual(cfg.id2label, { '0': 'LABEL_0' });
  assert.equal(cfg.pad_token_id, tokenizer.pad!.id);
  assert.equal(cfg[SCORE_BIAS_KEY], -0.125);
  const st = await SafetensorsReader.open(join(dir, 'model.safetensors'));
  assert.ok(st.names().includes('score.weight'));
  assert.ok(!st.names().includes('lm_head.weight'));
  const w = await st.read('score.weight');
  st.close();
  assert.deepEqual(w.shape, [1, rm.spec.hiddenSize]);
  assert.deepEqual(
    Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength),
    Buffer.from(rm.weights.get('score.weight')!.data.buffer),
  );
  const back = await RewardModel.load(dir);
  assert.equal(back.bias, -0.125);
  assert.deepEqual(back.spec, rm.spec);
  for (const [n, t] of rm.weights) assert.deepEqual(back.weights.get(n)!.data, t.data, n);
  const rows = [tokenizer.encode('Fact 1: red', { addSpecialTokens: false }), [5, 6, 7, 8, 9, 10]];
  assert.deepEqual(await back.score(rows), await rm.score(rows));
  // Saved again, the config is byte-identical.
  const dir2 = mkdtempSync(join(tmpdir(), 'rm-save2-'));
  await back.save(dir2);
  assert.equal(
    readFileSync(join(dir2, 'config.json'), 'utf8'),
    readFileSync(join(dir, 'config.json'), 'utf8'),
  );
  // A causal LM directory is not a reward model.
  const lmDir = mkdtempSync(join(tmpdir(), 'rm-lm-'));
  await CausalLM.random(smallSpec(), 0, tokenizer).save(lmDir);
  await assert.rejects(
    RewardModel.load(lmDir),
    (e: unknown) => e instanceof ConfigError && /architectures/.test(e.message),
  );
});

test('a row is scored at its last token: padding and batch make no difference', async () => {
  const rm = tinyRm(2);
  const rows = [[4, 5, 6], [7, 8, 9, 10, 11, 12, 13], [14]];
  const batched = await rm.score(rows, { batchSize: 3 });
  for (const [i, r] of rows.entries())
    close((await rm.score([r]))[0]!, batched[i]!, 1e-5, `row ${i}`);
});

const pairData = (n: number, offset = 0) =>
  Array.from({ length: n }, (_, i) => ({
    prompt: `Q${i + offset}: is it good?\nAnswer:`,
    chosen: ' yes good',
    rejected: ' no bad',
  }));

test('rm training: loss falls, accuracy and eval accuracy are logged, the model is saved and loads back for scoring', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rm-train-'));
  const rm = tinyRm(4);
  const cfg = parseRewardConfig({
    model_name_or_path: 'tiny',
    train_file: 'mem',
    output_dir: dir,
    learning_rate: 3e-3,
    max_steps: 30,
    per_device_train_batch_size: 4,
    logging_steps: 10,
    max_length: 64,
    use_worker: false,
    disable_tqdm: true,
    center_rewards_coefficient: 0.01,
  });
  const r = await trainReward(cfg, {
    model: rm,
    train: pairData(16),
    eval: [
      ...pairData(4, 100),
      { prompt: 'Rank:', completions: [' yes good', ' no bad', ' no'], ranking: [0, 1, 1] },
    ],
  });
  assert.equal(r.steps, 30);
  const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  for (const l of lines)
    for (const k of ['loss', 'accuracy', 'margin']) assert.equal(typeof l[k], 'number', k);
  assert.ok(lines[0].loss > lines[2].loss, `${lines[0].loss} -> ${lines[2].loss}`);
  assert.equal(lines[2].accuracy, 1);
  assert.equal(r.evalMetrics!.eval_accuracy, 1);
  assert.ok(r.evalMetrics!.eval_margin! > 0);
  assert.ok(existsSync(join(dir, 'reward_config.json')));
  const back = await RewardModel.load(dir);
  const ev = await evaluateReward(back, pairData(4, 200));
  assert.equal(ev.accuracy, 1);
  assert.equal(ev.pairs, 4);
  // rm score: JSONL in, each record with its reward out, equal to the in-memory model's.
  const inp = join(dir, 'score.jsonl');
  writeFileSync(
    inp,
    `${JSON.stringify({ prompt: 'Q9: is it good?\nAnswer:', completion: ' yes good', id: 7 })}\n`,
  );
  const scored = await scoreFile(back, inp);
  assert.equal(scored[0]!.id, 7);
  const mem = await scoreFile(rm, inp);
  close(scored[0]!.reward, mem[0]!.reward, 1e-6, 'reward');
  // normalize: the reference completions score mean 0 afterwards, and the bias survives a save.
  const refs = join(dir, 'refs.jsonl');
  writeFileSync(
    refs,
    pairData(3)
      .map((p) => JSON.stringify({ prompt: p.prompt, completion: p.chosen }))
      .join('\n'),
  );
  const n = await normalizeReward(back, refs);
  assert.ok(Math.abs(n.meanBefore) > 1e-3);
  const after = await scoreFile(back, refs);
  close(after.reduce((s, x) => s + x.reward, 0) / 3, 0, 1e-5, 'normalised mean');
  await back.save(join(dir, 'norm'));
  const again = await scoreFile(await RewardModel.load(join(dir, 'norm')), refs);
  assert.deepEqual(
    again.map((x) => x.reward),
    after.map((x) => x.reward),
  );
});

test('LoRA: the adapter saves the head as modules_to_save (PEFT SEQ_CLS) and loads back with the same scores', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rm-lora-'));
  const base = join(dir, 'base');
  await CausalLM.random(smallSpec(), 5, tokenizer).save(base);
  const out = join(dir, 'out');
  const r = await trainReward(
    parseRewardConfig({
      model_name_or_path: base,
      train_file: 'mem',
      output_dir: out,
      learning_rate: 1e-2,
      max_steps: 4,
      per_device_train_batch_size: 4,
      max_length: 64,
      use_peft: true,
      lora_r: 4,
      lora_alpha: 8,
      use_worker: false,
      disable_tqdm: true,
    }),
    { train: pairData(8) },
  );
  const ac = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.deepEqual(ac.modules_to_save, ['score']);
  assert.equal(ac.task_type, 'SEQ_CLS');
  assert.equal(ac.base_model_name_or_path, base);
  const st = await SafetensorsReader.open(join(out, 'adapter_model.safetensors'));
  const names = st.names();
  const head = await st.read('base_model.model.score.weight');
  st.close();
  assert.ok(names.some((n) => n.endsWith('.lora_A.weight')));
  // The head was trained (modules_to_save), not frozen at its initial value.
  const fresh = RewardModel.fromCausalLM(await CausalLM.load(base), 42);
  assert.notDeepEqual(head.data, fresh.weights.get('score.weight')!.data);
  assert.deepEqual(head.data, r.model.weights.get('score.weight')!.data);
  const back = await RewardModel.load(out);
  assert.ok(back.lora);
  const rows = [tokenizer.encode('Q1: is it good?\nAnswer: yes good', { addSpecialTokens: false })];
  close((await back.score(rows))[0]!, (await r.model.score(rows))[0]!, 1e-6, 'adapter score');
  // Merged into a full classifier, the score is the same.
  back.mergeAdapter();
  close((await back.score(rows))[0]!, (await r.model.score(rows))[0]!, 1e-5, 'merged score');
});

test('bad configs and bad data are typed errors naming the key, file and line', async () => {
  assert.throws(
    () =>
      parseRewardConfig({ model_name_or_path: 'm', train_file: 't', output_dir: 'o', beta: 0.1 }),
    (e: unknown) => e instanceof ConfigError && /beta/.test(e.message),
  );
  assert.throws(
    () =>
      parseRewardConfig({
        model_name_or_path: 'm',
        train_file: 't',
        output_dir: 'o',
        center_rewards_coefficient: -1,
      }),
    (e: unknown) => e instanceof ConfigError && e.field === 'center_rewards_coefficient',
  );
  assert.equal(
    parseRewardConfig({ model_name_or_path: 'm', train_file: 't', output_dir: 'o' }).learning_rate,
    1e-4,
  );
  const dir = mkdtempSync(join(tmpdir(), 'rm-bad-'));
  const f = join(dir, 'bad.jsonl');
  writeFileSync(
    f,
    `${JSON.stringify({ prompt: 'p', completions: [' a', ' b'], ranking: [0, 1] })}\n${JSON.stringify({ prompt: 'p', completions: [' a', ' b', ' c'], ranking: [0, 1] })}\n`,
  );
  const cfg = parseRewardConfig({
    model_name_or_path: 'tiny',
    train_file: f,
    output_dir: join(dir, 'out'),
    use_worker: false,
    disable_tqdm: true,
    max_length: 64,
  });
  await assert.rejects(trainReward(cfg, { model: tinyRm() }), (e: unknown) => {
    assert.ok(e instanceof DataError, String(e));
    assert.match(e.message + JSON.stringify(e), /bad\.jsonl/);
    assert.match(e.message + JSON.stringify(e), /ranking/);
    return true;
  });
  assert.ok(!existsSync(join(dir, 'out', 'model.safetensors')));
  // rm score: a record without a completion names its line and field.
  const s = join(dir, 'score.jsonl');
  writeFileSync(
    s,
    `${JSON.stringify({ prompt: 'a', completion: ' b' })}\n${JSON.stringify({ prompt: 'a' })}\n`,
  );
  await assert.rejects(scoreFile(tinyRm(), s), (e: unknown) => {
    assert.ok(e instanceof DataError);
    assert.equal(e.line, 2);
    assert.equal(e.field, 'completion');
    return true;
  });
});

test('rm accumulation: batch 4 x 1 and batch 2 x 2 train the same weights (micro-batches weigh their prompts)', async () => {
  const run = async (batch: number, accum: number) => {
    const rm = tinyRm(6);
    const dir = mkdtempSync(join(tmpdir(), 'rm-acc-'));
    await trainReward(
      parseRewardConfig({
        model_name_or_path: 'tiny',
        train_file: 'mem',
        output_dir: dir,
        learning_rate: 1e-3,
        max_steps: 3,
        per_device_train_batch_size: batch,
        gradient_accumulation_steps: accum,
        max_length: 64,
        use_worker: false,
        disable_tqdm: true,
      }),
      {
        model: rm,
        // Mixed K, so a micro-batch's share is its prompts, not its rows or pairs.
        train: [
          ...pairData(6),
          {
            prompt: 'R1:',
            completions: [' yes good', ' no bad', ' no', ' maybe'],
            ranking: [0, 1, 1, 2],
          },
          { prompt: 'R2:', completions: [' yes good', ' no'], ranking: [0, 1] },
        ],
      },
    );
    return rm.weights.get('score.weight')!.data;
  };
  const a = await run(4, 1);
  const b = await run(2, 2);
  for (let i = 0; i < a.length; i++) close(b[i]!, a[i]!, 1e-4, `score.weight[${i}]`);
});

test('rm resume: stopping after a checkpoint and resuming gives the same model as one run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rm-resume-'));
  const cfg = (out: string, resume: boolean) =>
    parseRewardConfig({
      model_name_or_path: 'tiny',
      train_file: 'mem',
      output_dir: out,
      learning_rate: 1e-3,
      max_steps: 4,
      save_steps: 2,
      per_device_train_batch_size: 4,
      max_length: 64,
      use_worker: false,
      disable_tqdm: true,
      resume_from_checkpoint: resume,
    });
  const whole = tinyRm(8);
  await trainReward(cfg(join(dir, 'a'), false), { model: whole, train: pairData(12) });
  await trainReward(cfg(join(dir, 'b'), false), {
    model: tinyRm(8),
    train: pairData(12),
    stopAfter: 3,
  });
  const resumed = tinyRm(8);
  const r = await trainReward(cfg(join(dir, 'b'), true), { model: resumed, train: pairData(12) });
  assert.equal(r.steps, 4);
  for (const [n, t] of whole.weights) assert.deepEqual(resumed.weights.get(n)!.data, t.data, n);
});

test('training forward reads every row at its own last token and pairs line up with rows (variable K, ties, right padding)', async () => {
  // Each row scored alone by rm.score (no padding at all) gives the reference scores; the
  // training forward over one padded batch (rows of different lengths in one element, K = 4 with
  // a tie, then K = 2, then K = 3 with the best last) must give exactly the loss and metrics
  // eq. 1 gives on those scores. A wrong read position or an off-by-one in the row numbering
  // of the pairs changes the loss.
  const rm = tinyRm(5);
  const enc = (s: string) => tokenizer.encode(s, { addSpecialTokens: false });
  const eos = tokenizer.eos!.id;
  const c = (s: string) => [...enc(s), eos];
  const items = [
    {
      prompt: enc('Q1: colour of the sky?\nAnswer:'),
      completions: [c(' blue'), c(' it is a very long answer'), c(' b'), c(' red')],
      ranks: [0, 2, 1, 2],
    },
    {
      prompt: enc('Q2: what?\nAnswer:'),
      completions: [c(' no'), c(' green leaves')],
      ranks: [1, 0],
    },
    {
      prompt: enc('Q3: x?\nAnswer:'),
      completions: [c(' one two three'), c(' x'), c(' yes')],
      ranks: [2, 1, 0],
    },
  ];
  const rows = items.flatMap((ex) => ex.completions.map((x) => [...ex.prompt, ...x]));
  const alone: number[] = [];
  for (const r of rows) alone.push((await rm.score([r]))[0]!);
  // eq. 1 by hand (not through batchPairs, which the forward's feeds come from).
  const coef = 0.01;
  const ref = { loss: 0, accuracy: 0, margin: 0 };
  let pairs = 0;
  let at = 0;
  for (const ex of items) {
    const K = ex.ranks.length;
    const s = alone.slice(at, at + K);
    at += K;
    for (let i = 0; i < K; i++)
      for (let j = 0; j < K; j++) {
        if (!(ex.ranks[i]! < ex.ranks[j]!)) continue;
        const d = s[i]! - s[j]!;
        const lossIJ = Math.log1p(Math.exp(-d)) + coef * (s[i]! + s[j]!) ** 2;
        ref.loss += lossIJ / ((K * (K - 1)) / 2) / items.length;
        ref.accuracy += d > 0 ? 1 : 0;
        ref.margin += d;
        pairs++;
      }
  }
  ref.accuracy /= pairs;
  ref.margin /= pairs;
  const b = rewardCollate(items, tokenizer.pad!.id, 64);
  const g = new Graph({ name: 'rm-rows' });
  const params: Record<string, Var> = {};
  for (const [n, t] of rm.allWeights()) params[n] = g.input(n, 'float32', t.shape);
  const out = rewardForward(rm.spec, { centerRewardsCoefficient: coef })(g, params);
  g.output('loss', out.loss);
  for (const [k, v] of Object.entries(out.outputs ?? {})) g.output(k, v);
  const sess = await createSession(g);
  const feeds: Record<string, ReturnType<typeof tensor>> = { ...b.feeds };
  for (const [n, t] of rm.allWeights()) feeds[n] = tensor('float32', t.shape, t.data);
  const res = await sess.run(feeds);
  await sess.release();
  const num = (k: string) => Number(res[k]!.data[0]);
  close(num('loss'), ref.loss, 1e-4, 'loss');
  close(num('accuracy'), ref.accuracy, 1e-6, 'accuracy');
  close(num('margin'), ref.margin, 1e-4, 'margin');
  // The scores must differ enough that a shuffled row numbering would show.
  assert.ok(Math.max(...alone) - Math.min(...alone) > 1e-3, `scores too alike: ${alone}`);
});
