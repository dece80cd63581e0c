// PPO end to end on tiny models: config checks, the known answers of a first update (policy =
// reference, one epoch: KL 0, ratio 1, clip fraction 0), a seeded run repeating itself, and a
// run stopped after a checkpoint resuming to the same weights as one uninterrupted run.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyChatTemplate } from '../../src/data/templates/chat.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { RewardModel } from '../../src/models/reward.ts';
import { loadPpoPrompts, parsePpoConfig, trainPpo } from '../../src/train/ppo.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { smallSpec, tokenizer } from './tiny.ts';

const root = mkdtempSync(join(tmpdir(), 'ppo-'));
const policyDir = join(root, 'policy');
const rmDir = join(root, 'rm');
const promptsFile = join(root, 'prompts.jsonl');
const ptxFile = join(root, 'ptx.txt');
const ready = (async () => {
  const lm = CausalLM.random(smallSpec(64), 5, tokenizer);
  await lm.save(policyDir);
  await RewardModel.fromCausalLM(lm, 9).save(rmDir);
  writeFileSync(
    promptsFile,
    Array.from({ length: 5 }, (_, i) => JSON.stringify({ prompt: `Q${i}: what colour?` })).join(
      '\n',
    ),
  );
  writeFileSync(
    ptxFile,
    'Fact 1: the colour of item 1 is blue.\nFact 2: the colour of item 2 is green.\n',
  );
})();

const base = (out: string, extra: Record<string, unknown> = {}) =>
  parsePpoConfig({
    model_name_or_path: policyDir,
    reward_model_path: rmDir,
    train_file: promptsFile,
    output_dir: join(root, out),
    per_device_train_batch_size: 2,
    response_length: 6,
    max_length: 32,
    learning_rate: 1e-3,
    logging_steps: 1,
    use_worker: false,
    disable_tqdm: true,
    seed: 3,
    ...extra,
  });

test('PPOConfig: TRL defaults; unknown keys, a missing reward and mid-iteration checkpoints are refused', async () => {
  await ready;
  const c = base('defaults');
  assert.equal(c.learning_rate, 1e-3);
  const d = parsePpoConfig({
    model_name_or_path: 'm',
    train_file: 'p',
    output_dir: 'o',
    reward_model_path: 'r',
  });
  assert.deepEqual(
    [d.learning_rate, d.num_ppo_epochs, d.num_mini_batches, d.kl_coef, d.kl_estimator],
    [3e-6, 4, 1, 0.05, 'k1'],
  );
  assert.deepEqual(
    [d.cliprange, d.vf_coef, d.cliprange_value, d.gamma, d.lam, d.response_length, d.temperature],
    [0.2, 0.1, 0.2, 1, 0.95, 53, 0.7],
  );
  assert.throws(
    () => parsePpoConfig({ ...d, init_kl_coef: 0.2 }, 'ppo.yaml'),
    (e: unknown) =>
      e instanceof ConfigError && /init_kl_coef/.test(e.message) && /ppo\.yaml/.test(e.message),
  );
  assert.throws(
    () => parsePpoConfig({ model_name_or_path: 'm', train_file: 'p', output_dir: 'o' }),
    (e: unknown) => e instanceof ConfigError && e.field === 'reward_model_path',
  );
  assert.throws(
    () => parsePpoConfig({ ...d, ptx_coef: 27.8 }),
    (e: unknown) => e instanceof ConfigError && e.field === 'ptx_file',
  );
  for (const [k, v] of [
    ['eval_file', 'held.jsonl'],
    ['max_steps', 10],
  ] as const)
    assert.throws(
      () => parsePpoConfig({ ...d, [k]: v }),
      (e: unknown) => e instanceof ConfigError && e.field === k,
    );
  await assert.rejects(
    trainPpo(base('bad-save', { num_ppo_epochs: 2, save_steps: 3 })),
    (e: unknown) => e instanceof ConfigError && e.field === 'save_steps',
  );
});

test('first update with policy = reference and one epoch: KL 0, ratio 1, clipfrac 0', async () => {
  await ready;
  const r = await trainPpo(
    base('first', { num_ppo_epochs: 1, total_episodes: 2, ptx_file: ptxFile, ptx_coef: 1 }),
  );
  assert.equal(r.steps, 1);
  const log = r.logs[0]!;
  assert.equal(log['objective/kl'], 0);
  assert.equal(log['objective/non_score_reward'], 0);
  assert.equal(log['objective/rlhf_reward'], log['objective/scores']);
  assert.ok(Math.abs(log['val/ratio']! - 1) < 1e-5, `ratio ${log['val/ratio']}`);
  assert.equal(log['policy/clipfrac_avg'], 0);
  assert.ok(log['policy/approxkl_avg']! < 1e-10);
  assert.ok(Number.isFinite(log['loss/value_avg']) && Number.isFinite(log['loss/ptx_avg']));
  assert.ok(log['loss/ptx_avg']! > 0);
  // The metrics file carries TRL's names.
  const line = JSON.parse(readFileSync(join(r.outputDir, 'metrics.jsonl'), 'utf8').split('\n')[0]!);
  for (const k of [
    'objective/kl',
    'objective/entropy',
    'objective/scores',
    'policy/clipfrac_avg',
    'loss/policy_avg',
    'val/ratio',
  ])
    assert.ok(k in line, k);
});

const weightsOf = (dir: string) => CausalLM.load(dir).then((m) => m.weights);

test('a seeded PPO run repeats itself, and a run stopped after a checkpoint resumes to the same weights', async () => {
  await ready;
  // 5 prompts in batches of 2: the third iteration spans two passes over the prompt set.
  const cfg = { num_ppo_epochs: 2, num_mini_batches: 1, total_episodes: 6, save_steps: 2 };
  const a = await trainPpo(base('seed-a', cfg));
  const b = await trainPpo(base('seed-b', cfg));
  assert.equal(a.steps, 6);
  const wa = await weightsOf(a.outputDir);
  const wb = await weightsOf(b.outputDir);
  const w0 = await weightsOf(policyDir);
  let moved = false;
  for (const [n, t] of wa) {
    assert.deepEqual(wb.get(n)!.data, t.data, n);
    if (t.data.some((v, i) => v !== w0.get(n)!.data[i])) moved = true;
  }
  assert.ok(moved, 'training changed the policy');
  // KL to the reference grows from 0 once the policy has moved.
  assert.equal(a.logs[0]!['objective/kl'], 0);
  assert.ok(a.logs.slice(2).some((l) => l['objective/kl'] !== 0));

  await trainPpo(base('resume', cfg), { stopAfter: 4 });
  const c = await trainPpo(base('resume', { ...cfg, resume_from_checkpoint: true }));
  assert.equal(c.steps, 6);
  const wc = await weightsOf(c.outputDir);
  for (const [n, t] of wa) assert.deepEqual(wc.get(n)!.data, t.data, n);
  const vc = await RewardModel.load(join(c.outputDir, 'value_model'));
  const va = await RewardModel.load(join(a.outputDir, 'value_model'));
  for (const [n, t] of va.weights) assert.deepEqual(vc.weights.get(n)!.data, t.data, n);
});

test('prompt files: a line without a string prompt, or a prompt with no room for the response, is a DataError naming file and line', async () => {
  const f = join(root, 'bad.jsonl');
  writeFileSync(f, '{"prompt": "Q1: what colour?"}\n{"question": "Q2"}\n');
  await assert.rejects(
    loadPpoPrompts(f, (s) => tokenizer.encode(s), 20),
    (e: unknown) => e instanceof DataError && e.line === 2 && e.file === f && e.field === 'prompt',
  );
  writeFileSync(
    f,
    '{"prompt": "Q1: what colour?"}\n{"prompt": "Q2: what colour is item 12 today?"}\n',
  );
  await assert.rejects(
    loadPpoPrompts(f, (s) => tokenizer.encode(s), 12),
    (e: unknown) => e instanceof DataError && e.line === 2 && /max_length/.test(e.message),
  );
  // Conversational prompts render through the chat template with the generation prompt.
  writeFileSync(f, '{"prompt": [{"role": "user", "content": "Q1: what colour?"}]}\n');
  const chat = await loadPpoPrompts(
    f,
    (s) => tokenizer.encode(s),
    40,
    (m) => applyChatTemplate(tokenizer.chatTemplate!, m, { addGenerationPrompt: true }),
  );
  assert.equal(
    chat[0]!.prompt,
    '<|im_start|>user\nQ1: what colour?<|im_end|>\n<|im_start|>assistant\n',
  );
  await assert.rejects(
    loadPpoPrompts(f, (s) => tokenizer.encode(s), 40),
    (e: unknown) => e instanceof DataError && e.line === 1 && /chat_template/.test(e.message),
  );
});

test('num_mini_batches: each rollout batch is split into minibatches, one update each; the first update of every iteration has ratio 1', async () => {
  await ready;
  const r = await trainPpo(
    base('minibatches', {
      per_device_train_batch_size: 1,
      num_mini_batches: 2,
      num_ppo_epochs: 1,
      total_episodes: 4,
      kl_estimator: 'k3',
      whiten_rewards: true,
    }),
  );
  assert.equal(r.iterations, 2);
  assert.equal(r.steps, 4);
  for (const i of [0, 2]) {
    assert.ok(Math.abs(r.logs[i]!['val/ratio']! - 1) < 1e-5, `step ${i + 1}`);
    assert.equal(r.logs[i]!['policy/clipfrac_avg'], 0);
  }
  // k3 is never negative.
  for (const l of r.logs) assert.ok(l['objective/kl']! >= 0);
});
