// `instructkit ppo` killed with SIGKILL mid-run resumes from its last checkpoint and ends with
// the same policy and value model as an uninterrupted run: checkpoints fall on iteration
// boundaries, rollouts are a function of (seed, iteration) and the restored weights, and the
// adaptive KL coefficient resumes from ppo_kl_coef.json. (The pattern of grpo-resume.test.ts.)
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CausalLM } from '../../src/models/lm.ts';
import { RewardModel } from '../../src/models/reward.ts';
import { readMetrics, resumeRun, runAndKill } from '../helpers/kill-resume.ts';
import { smallSpec, tokenizer } from './tiny.ts';

test('kill -9 during `instructkit ppo`, then --resume-from-checkpoint: same final weights', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-ppo-kill-'));
  const model = join(dir, 'model');
  const lm = CausalLM.random(smallSpec(64), 5, tokenizer);
  await lm.save(model);
  await RewardModel.fromCausalLM(lm, 9).save(join(dir, 'rm'));
  const prompts = Array.from({ length: 6 }, (_, i) => ({ prompt: `Q${i}: what colour?\nAnswer:` }));
  writeFileSync(join(dir, 'train.jsonl'), `${prompts.map((p) => JSON.stringify(p)).join('\n')}\n`);
  const cfg = (out: string) => ({
    model_name_or_path: model,
    reward_model_path: join(dir, 'rm'),
    train_file: 'train.jsonl',
    output_dir: out,
    per_device_train_batch_size: 2,
    num_ppo_epochs: 2,
    total_episodes: 10,
    response_length: 6,
    max_length: 32,
    learning_rate: 3e-3,
    adap_kl_ctrl: true,
    target: 0.01,
    horizon: 10,
    save_steps: 2,
    logging_steps: 1,
    use_worker: true,
    disable_tqdm: true,
  });
  writeFileSync(join(dir, 'ref.yaml'), JSON.stringify(cfg(join(dir, 'ref'))));
  writeFileSync(join(dir, 'run.yaml'), JSON.stringify(cfg(join(dir, 'run'))));
  const { run, kept } = await runAndKill({
    command: 'ppo',
    dir,
    cwd: dir,
    checkpoint: 2,
    totalSteps: 10,
  });
  await resumeRun({ command: 'ppo', dir, cwd: dir });
  const logged = readMetrics;
  const after = logged(join(run, 'metrics.jsonl'));
  const whole = logged(join(dir, 'ref', 'metrics.jsonl'));
  assert.deepEqual(
    after.map((l) => l.step),
    Array.from({ length: 10 }, (_, i) => i + 1),
  );
  // The resumed iterations sampled the same completions, scores and β as the uninterrupted run.
  for (let i = kept; i < 10; i++)
    for (const k of ['objective/scores', 'objective/kl', 'objective/kl_coef', 'loss/value_avg'])
      assert.equal(after[i]![k], whole[i]![k], `${k} at step ${i + 1}`);
  assert.ok(
    new Set(whole.map((l) => l['objective/kl_coef'])).size > 1,
    'the adaptive β moved during the run',
  );
  for (const f of ['model.safetensors', join('value_model', 'model.safetensors')])
    assert.ok(
      readFileSync(join(run, f)).equals(readFileSync(join(dir, 'ref', f))),
      `resumed ${f} equals the uninterrupted run bit for bit`,
    );
});
