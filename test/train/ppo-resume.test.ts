// `instructkit ppo` killed with SIGKILL mid-run resumes from its last checkpoint and ends with
// the same policy and value model as an uninterrupted run: checkpoints fall on iteration
// boundaries, rollouts are a function of (seed, iteration) and the restored weights, and the
// adaptive KL coefficient resumes from ppo_kl_coef.json. (The pattern of grpo-resume.test.ts.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CausalLM } from '../../src/models/lm.ts';
import { RewardModel } from '../../src/models/reward.ts';
import { repoRoot } from '../helpers/shared.ts';
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
  const cli = (args: string[]) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'instructkit.js'), ...args], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d) => {
      err += d;
    });
    return {
      child,
      done: new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
        child.on('exit', (code, signal) => r({ code, signal })),
      ),
      err: () => err,
    };
  };
  const ref = cli(['ppo', '--config', join(dir, 'ref.yaml')]);
  assert.deepEqual(await ref.done, { code: 0, signal: null }, ref.err());
  const run = join(dir, 'run');
  const first = cli(['ppo', '--config', join(dir, 'run.yaml')]);
  while (
    !existsSync(join(run, 'checkpoint-2', 'trainer_state.json')) &&
    first.child.exitCode === null
  )
    await new Promise((r) => setTimeout(r, 5));
  assert.equal(first.child.exitCode, null, `the run ended before the kill: ${first.err()}`);
  assert.ok(first.child.kill('SIGKILL'));
  assert.deepEqual(await first.done, { code: null, signal: 'SIGKILL' }, 'killed by SIGKILL');
  assert.ok(!existsSync(join(run, 'model.safetensors')), 'no final weights after the kill');
  const kept = Math.max(
    ...readdirSync(run)
      .map((n) => /^checkpoint-(\d+)$/.exec(n))
      .filter((m) => m !== null && existsSync(join(run, m[0], 'trainer_state.json')))
      .map((m) => Number(m![1])),
  );
  assert.ok(kept >= 2 && kept < 10, `last complete checkpoint ${kept}`);
  const second = cli(['ppo', '--config', join(dir, 'run.yaml'), '--resume-from-checkpoint']);
  assert.deepEqual(await second.done, { code: 0, signal: null }, second.err());
  const logged = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, number>);
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
