// GRPO: advantages and each loss_type's token averaging against hand-computed values; the first
// update with policy = reference (KL 0, ratio 1, nothing clipped) for the frozen-copy and the
// LoRA-base references; seeded runs reproduce; bad configs; reward errors and an unreachable
// judge during training (the error names the source and record; checkpoints and logs stay).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Graph } from '../../src/engine/graph.ts';
import { createSession, tensor } from '../../src/engine/runtime.ts';
import { CausalLM } from '../../src/models/lm.ts';
import {
  GRPO_LOSS_TYPES,
  grpoAdvantages,
  grpoBatchWeight,
  grpoLoss,
  parseGrpoConfig,
  trainGrpo,
} from '../../src/train/grpo.ts';
import { RewardError, type RewardInput, type RewardSource } from '../../src/train/rewards.ts';
import type { Rollout } from '../../src/train/rollout.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { smallSpec, tokenizer } from './tiny.ts';

const tmp = (p: string) => mkdtempSync(join(tmpdir(), `ik-${p}-`));
const close = (a: number, b: number, tol = 1e-5, what = '') =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what} ${a} vs ${b}`);

test('advantages: group mean removed, divided by the unbiased group / batch std + 1e-4, or not', () => {
  const r = [1, 0, 0, 1, 2, 2, 2, 2];
  const sGroup = Math.sqrt((4 * 0.25) / 3); // group 1: mean 0.5
  const g = grpoAdvantages(r, 4, 'group');
  const want = [0.5, -0.5, -0.5, 0.5].map((a) => a / (sGroup + 1e-4));
  for (const [i, w] of want.entries()) close(g[i]!, w, 1e-12);
  for (let i = 4; i < 8; i++) assert.equal(g[i], 0);
  // Batch: mean 1.25 over all eight, Σ(x−m)² = 2·0.0625 + 2·1.5625 + 4·0.5625 = 5.5.
  const sBatch = Math.sqrt(5.5 / 7);
  const b = grpoAdvantages(r, 4, 'batch');
  close(b[0]!, 0.5 / (sBatch + 1e-4), 1e-12);
  close(b[1]!, -0.5 / (sBatch + 1e-4), 1e-12);
  assert.deepEqual([...grpoAdvantages(r, 4, 'none')], [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]);
  assert.throws(() => grpoAdvantages([1, 2, 3], 2, 'group'), ConfigError);
});

test('loss types average tokens as TRL: grpo per sequence, dr_grpo by B·L, dapo and bnpo by tokens', async () => {
  // Two rows: row 0 has 3 completion tokens, row 1 has 1. ratios exp(lp − old).
  const lp = [-1, -2, -0.5, -1.5, 0, 0];
  const old = [-1.5, -2, -0.1, -1, 0, 0];
  const mask = [1, 1, 1, 1, 0, 0];
  const ref = [-1.2, -2.1, -0.5, -0.8, 0, 0];
  const adv = [0.7, -1.3];
  const eps = 0.2;
  const epsHigh = 0.28;
  const beta = 0.05;
  const L = 5;
  // Hand computation per token.
  const per: number[] = [];
  const clipLow: number[] = [];
  const clipHigh: number[] = [];
  let klSum = 0;
  for (let i = 0; i < 6; i++) {
    const a = adv[Math.floor(i / 3)]!;
    const ratio = Math.exp(lp[i]! - old[i]!);
    const c = Math.min(Math.max(ratio, 1 - eps), 1 + epsHigh);
    const d = ref[i]! - lp[i]!;
    const kl = Math.exp(d) - d - 1;
    per.push(-Math.min(ratio * a, c * a) + beta * kl);
    clipLow.push(ratio < 1 - eps && a < 0 ? 1 : 0);
    clipHigh.push(ratio > 1 + epsHigh && a > 0 ? 1 : 0);
    klSum += kl * mask[i]!;
  }
  const rowSum = (b: number) =>
    [0, 1, 2].reduce((s, t) => s + per[b * 3 + t]! * mask[b * 3 + t]!, 0);
  const want = {
    grpo: (rowSum(0) / 3 + rowSum(1) / 1) / 2,
    dr_grpo: (rowSum(0) + rowSum(1)) / (2 * L),
    dapo: (rowSum(0) + rowSum(1)) / 4,
    bnpo: (rowSum(0) + rowSum(1)) / 4,
  };
  for (const lossType of GRPO_LOSS_TYPES) {
    const g = new Graph({ name: 't' });
    const v = (n: string) => g.input(n, 'float32', [2, 3]);
    const out = grpoLoss(
      {
        logps: v('lp'),
        old: v('old'),
        ref: v('ref'),
        mask: v('mask'),
        advantages: g.input('adv', 'float32', [2]),
      },
      { beta, epsilon: eps, epsilonHigh: epsHigh, lossType, maxCompletionLength: L },
    );
    g.output('loss', out.loss);
    for (const [k, x] of Object.entries(out.outputs)) g.output(k, x);
    const s = await createSession(g);
    const f = (a: number[]) => tensor('float32', [2, 3], Float32Array.from(a));
    const r = await s.run({
      lp: f(lp),
      old: f(old),
      ref: f(ref),
      mask: f(mask),
      adv: tensor('float32', [2], Float32Array.from(adv)),
    });
    await s.release();
    const sc = (k: string) => Number((r[k]!.data as Float32Array)[0]);
    close(sc('loss'), want[lossType], 1e-5, lossType);
    close(sc('kl'), klSum / 4, 1e-5, 'kl');
    close(sc('clip_ratio/low_mean'), clipLow.reduce((a, b, i) => a + b * mask[i]!, 0) / 4);
    close(sc('clip_ratio/high_mean'), clipHigh.reduce((a, b, i) => a + b * mask[i]!, 0) / 4);
  }
  // The fixture exercises both clips: row 0 token 0 (ratio 1.65, A > 0: high), row 1 token 0
  // (ratio 0.61, A < 0: low), and ratios out of range that are not clipped (row 0 token 2).
  assert.deepEqual(clipHigh, [1, 0, 0, 0, 0, 0]);
  assert.deepEqual(clipLow, [0, 0, 0, 1, 0, 0]);
});

const prompts = Array.from({ length: 8 }, (_, i) => ({
  prompt: `Q${i}: what colour?\nAnswer:`,
  reference: ['red', 'blue', 'green'][i % 3],
}));
/** Counts the letter e: varies within groups of a random model's completions. */
const eCount: RewardSource = {
  name: 'e-count',
  id: 'e_count',
  async score(b: readonly RewardInput[]) {
    return b.map((x) => (x.completion.match(/e/g) ?? []).length);
  },
};
const base = (out: string, extra: Record<string, unknown> = {}) => ({
  model_name_or_path: 'unused',
  train_file: 'unused',
  output_dir: out,
  reward_funcs: [{ type: 'exact_match' }],
  num_generations: 4,
  per_device_train_batch_size: 8,
  max_prompt_length: 16,
  max_completion_length: 8,
  learning_rate: 3e-3,
  max_steps: 2,
  logging_steps: 1,
  use_worker: false,
  disable_tqdm: true,
  seed: 1,
  ...extra,
});
const model = () => CausalLM.random(smallSpec(64), 2, tokenizer);

for (const [name, extra] of [
  ['full fine-tuning, frozen-copy reference', {}],
  [
    'LoRA, the base (adapter disabled) as reference',
    { use_peft: true, lora_r: 4, lora_dropout: 0 },
  ],
  ['num_iterations 2: old log-probs from the inference pass', { num_iterations: 2 }],
] as const) {
  test(`first update with policy = reference (${name}): kl 0, ratio 1, nothing clipped`, async () => {
    const logs: Record<string, number | undefined>[] = [];
    const r = await trainGrpo(parseGrpoConfig(base(tmp('grpo-first'), { beta: 0.1, ...extra })), {
      model: model(),
      train: prompts,
      rewards: [eCount],
      onLog: (l) => logs.push(l),
    });
    assert.equal(r.steps, 2);
    const first = logs[0]!;
    const exact = !('num_iterations' in extra);
    if (exact) {
      assert.equal(first.kl, 0);
      assert.equal(first['val/ratio'], 1);
    } else {
      close(first.kl!, 0, 1e-6, 'kl');
      close(first['val/ratio']!, 1, 1e-5, 'ratio');
    }
    assert.equal(first['clip_ratio/region_mean'], 0);
    assert.ok(Number.isFinite(first.loss) && Number.isFinite(first.grad_norm));
    assert.ok(first.grad_norm! > 0, 'advantages move the policy');
    // After an update the policy has left the reference.
    assert.ok(logs[1]!.kl! > 0, `kl at step 2 ${logs[1]!.kl}`);
    for (const k of ['reward', 'reward_std', 'completions/mean_length', 'rewards/e_count/mean'])
      assert.ok(Number.isFinite(first[k]), k);
  });
}

test('a seeded run reproduces its rollouts and weights; another seed does not', async () => {
  const run = async (seed: number) => {
    const seen: number[][] = [];
    const r = await trainGrpo(parseGrpoConfig(base(tmp('grpo-seed'), { seed, max_steps: 3 })), {
      model: model(),
      train: prompts,
      rewards: [eCount],
      onRollouts: (_s, rs: readonly Rollout[]) => seen.push(...rs.map((x) => x.completion)),
    });
    return { seen, w: r.model.weights };
  };
  const a = await run(1);
  const b = await run(1);
  const c = await run(2);
  assert.deepEqual(a.seen, b.seen);
  for (const [n, t] of a.w) assert.deepEqual(b.w.get(n)!.data, t.data, n);
  assert.notDeepEqual(a.seen, c.seen);
});

test('config: unknown keys, batch not a multiple of num_generations, save_steps inside an iteration block', () => {
  assert.throws(
    () => parseGrpoConfig({ ...base('x'), num_generation: 4 }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /num_generation/);
      return true;
    },
  );
  assert.throws(
    () => parseGrpoConfig({ ...base('x'), per_device_train_batch_size: 6 }),
    /per_device_train_batch_size/,
  );
  assert.throws(
    () => parseGrpoConfig({ ...base('x'), num_iterations: 2, save_steps: 3 }),
    /save_steps/,
  );
  assert.throws(
    () => parseGrpoConfig({ ...base('x'), reward_funcs: [{ type: 'exact_match', feld: 'x' }] }),
    ConfigError,
  );
  const d = parseGrpoConfig({ ...base('x') });
  assert.equal(d.beta, 0);
  assert.equal(d.epsilon, 0.2);
  assert.equal(d.loss_type, 'dapo');
  assert.equal(d.scale_rewards, 'group');
  assert.equal(d.temperature, 1);
  assert.equal(parseGrpoConfig({ ...base('x'), scale_rewards: false }).scale_rewards, 'none');
});

test('a reward that throws during training names the source and the record; a prompt-less record is a DataError', async () => {
  const bad: RewardSource = {
    name: 'module /x/bad.ts',
    async score(b) {
      throw new RewardError('module /x/bad.ts', b[0]!.index, 'threw: nope');
    },
  };
  await assert.rejects(
    trainGrpo(parseGrpoConfig(base(tmp('grpo-bad'))), {
      model: model(),
      train: prompts,
      rewards: [bad],
    }),
    /module \/x\/bad\.ts, record \d+: threw: nope/,
  );
  await assert.rejects(
    trainGrpo(parseGrpoConfig(base(tmp('grpo-bad2'))), {
      model: model(),
      train: [...prompts, { question: 'x' }],
      rewards: [eCount],
    }),
    /line 9.*prompt/,
  );
});

test('a judge that stops answering mid-run: retries, then a RewardError; the checkpoint and log lines written stay', async () => {
  let answered = 0;
  const server = createServer((req, res) => {
    if (answered >= 8) {
      req.socket.destroy();
      return;
    }
    answered++;
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          choices: [
            { index: 0, message: { role: 'assistant', content: '7' }, finish_reason: 'stop' },
          ],
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  const out = tmp('grpo-judge');
  try {
    await assert.rejects(
      trainGrpo(
        parseGrpoConfig(
          base(out, {
            max_steps: 3,
            save_steps: 1,
            per_device_train_batch_size: 8,
            reward_funcs: [
              {
                type: 'judge',
                client: {
                  endpoints: [{ base_url: url }],
                  model: 'judge',
                  max_retries: 1,
                  backoff_initial_ms: 1,
                  concurrency: 1,
                },
              },
            ],
          }),
        ),
        { model: model(), train: prompts.slice(0, 2) },
      ),
      (e: unknown) => {
        assert.ok(e instanceof RewardError, String(e));
        assert.ok(e.message.includes(url), e.message);
        assert.match(e.message, /record \d+: .*giving up after 2 attempts/);
        return true;
      },
    );
  } finally {
    server.close();
  }
  assert.ok(existsSync(join(out, 'checkpoint-1', 'trainer_state.json')));
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
  assert.equal(lines.length, 1);
  assert.equal(JSON.parse(lines[0]!).step, 1);
  close(JSON.parse(lines[0]!).reward, 0.7, 1e-12, 'reward');
});

test("micro-batch weights: dapo by completion tokens (the step's token mean), bnpo by rows (the mean of micro-batch token means)", () => {
  // Two micro-batches of 2 rows: token sums 6 and 2 over 3 and 1 completion tokens.
  const sums = [6, 2];
  const toks = [3, 1];
  const combine = (t: 'dapo' | 'bnpo') => {
    const w = toks.map((k) => grpoBatchWeight(t, 2, k));
    const W = w.reduce((a, b) => a + b, 0);
    return sums.reduce((a, s, i) => a + (s / toks[i]!) * (w[i]! / W), 0);
  };
  close(combine('dapo'), (6 + 2) / (3 + 1), 1e-12);
  close(combine('bnpo'), (6 / 3 + 2 / 1) / 2, 1e-12);
});

test('conversational prompts (TRL format) render through the chat template with the generation prompt; a malformed message list names its line', async () => {
  const chat = [0, 1, 2, 3].map((i) => ({
    prompt: [{ role: 'user', content: `Q${i}: what colour?` }],
    reference: 'red',
  }));
  const seenPrompts: string[] = [];
  const counting: RewardSource = {
    ...eCount,
    async score(b) {
      for (const x of b) seenPrompts.push(x.prompt);
      return eCount.score(b);
    },
  };
  const r = await trainGrpo(parseGrpoConfig(base(tmp('grpo-chat'), { max_steps: 1 })), {
    model: model(),
    train: chat,
    rewards: [counting],
  });
  assert.equal(r.steps, 1);
  assert.ok(seenPrompts.length > 0);
  for (const p of seenPrompts)
    assert.match(
      p,
      /^<\|im_start\|>user\nQ\d: what colour\?<\|im_end\|>\n<\|im_start\|>assistant\n$/,
    );
  await assert.rejects(
    trainGrpo(parseGrpoConfig(base(tmp('grpo-chat-bad'))), {
      model: model(),
      train: [...chat, { prompt: [{ role: 'user' }] }],
      rewards: [eCount],
    }),
    (e: unknown) =>
      e instanceof DataError && /line 5/.test(e.message) && /prompt\.0\.content/.test(e.message),
  );
});
