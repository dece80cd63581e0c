// `instructkit grpo` killed with SIGKILL mid-run resumes from its last checkpoint and ends with
// the same weights as an uninterrupted run: rollouts are a function of (seed, step) and the
// weights, which the checkpoint restores exactly. The reward is a TypeScript module on disk,
// loaded by the CLI relative to the config file.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { saveCheckpoint } from '../../src/models/checkpoint.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { readMetrics, resumeRun, runAndKill } from '../helpers/kill-resume.ts';
import { smallSpec, tokenizer } from './tiny.ts';

test('kill -9 during `instructkit grpo`, then --resume-from-checkpoint: same final weights', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-grpo-kill-'));
  const model = join(dir, 'model');
  await saveCheckpoint(model, {
    spec: smallSpec(64),
    tensors: CausalLM.random(smallSpec(64), 5, tokenizer).weights,
    tokenizer,
    generationConfig: null,
  });
  const prompts = Array.from({ length: 6 }, (_, i) => ({ prompt: `Q${i}: what colour?\nAnswer:` }));
  writeFileSync(join(dir, 'train.jsonl'), `${prompts.map((p) => JSON.stringify(p)).join('\n')}\n`);
  writeFileSync(
    join(dir, 'e_count.ts'),
    'export function reward(_p: string, c: string): number { return (c.match(/e/g) ?? []).length; }\n',
  );
  const cfg = (out: string) => ({
    model_name_or_path: model,
    train_file: 'train.jsonl',
    output_dir: out,
    reward_funcs: [{ type: 'module', path: 'e_count.ts' }],
    num_generations: 4,
    per_device_train_batch_size: 8,
    max_prompt_length: 16,
    max_completion_length: 8,
    learning_rate: 3e-3,
    beta: 0.05,
    max_steps: 6,
    save_steps: 2,
    logging_steps: 1,
    use_worker: true,
    disable_tqdm: true,
  });
  writeFileSync(join(dir, 'ref.yaml'), JSON.stringify(cfg(join(dir, 'ref'))));
  writeFileSync(join(dir, 'run.yaml'), JSON.stringify(cfg(join(dir, 'run'))));
  const { run, kept } = await runAndKill({
    command: 'grpo',
    dir,
    cwd: dir,
    checkpoint: 2,
    totalSteps: 6,
  });
  await resumeRun({ command: 'grpo', dir, cwd: dir });
  const logged = readMetrics;
  const after = logged(join(run, 'metrics.jsonl'));
  const whole = logged(join(dir, 'ref', 'metrics.jsonl'));
  assert.deepEqual(
    after.map((l) => l.step),
    Array.from({ length: 6 }, (_, i) => i + 1),
  );
  // The resumed steps sampled the same completions and rewards as the uninterrupted run.
  for (let i = kept; i < 6; i++) {
    assert.equal(after[i]!.reward, whole[i]!.reward, `reward at step ${i + 1}`);
    assert.equal(after[i]!.kl, whole[i]!.kl, `kl at step ${i + 1}`);
  }
  assert.ok(
    readFileSync(join(run, 'model.safetensors')).equals(
      readFileSync(join(dir, 'ref', 'model.safetensors')),
    ),
    'resumed weights equal the uninterrupted run bit for bit',
  );
});
