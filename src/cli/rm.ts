// `instructkit rm train | eval | score | normalize`: reward models (TRL RewardConfig names) from
// preference pairs or K-way rankings, their held-out pairwise accuracy, rewards for a JSONL of
// {prompt, completion} records, and InstructGPT's bias normalisation. Flag parsing only.
import type { Command } from 'commander';
import { readConfigFile } from '../data/config.ts';
import { writeRecords } from '../data/io.ts';
import { RewardModel } from '../models/reward.ts';
import {
  evaluateReward,
  normalizeReward,
  parseRewardConfig,
  scoreFile,
  trainReward,
} from '../train/reward.ts';
import { ConfigError } from '../util/errors.ts';
import { flagsToConfig, num, trainingFlags } from './train.ts';

async function train(flags: Record<string, unknown>): Promise<void> {
  const src = flags.config ? await readConfigFile(String(flags.config)) : { value: {} };
  if (src.value !== null && (typeof src.value !== 'object' || Array.isArray(src.value)))
    throw new ConfigError('expected a mapping of RewardConfig settings', { file: src.file });
  const cfg = parseRewardConfig(
    { ...(src.value as Record<string, unknown>), ...flagsToConfig(flags) },
    src.file,
  );
  const r = await trainReward(cfg);
  const e = r.evalMetrics;
  process.stdout.write(
    `rm: ${r.steps} steps on ${r.trainExamples} examples, final loss ${r.finalLoss.toFixed(4)}${e ? `, eval accuracy ${e.eval_accuracy!.toFixed(4)}, eval loss ${e.eval_loss!.toFixed(4)}` : ''}; reward model written to ${r.outputDir}\n`,
  );
}

export function registerRm(program: Command): void {
  const rm = program
    .command('rm')
    .description('Reward models: train on preference pairs / rankings, evaluate, score, normalize');
  trainingFlags(
    rm.command('train').description('Train a reward model (scalar head) from a causal LM'),
    'RewardConfig',
  )
    .option(
      '--center-rewards-coefficient <x>',
      'weight of coef·(r_w + r_l)² (TRL; 0.01 recommended)',
      num,
    )
    .action((flags) => train(flags));

  rm.command('eval')
    .description('Pairwise accuracy of a reward model on preference pairs or rankings')
    .requiredOption('--model <dir>', 'reward model directory (or its PEFT adapter)')
    .requiredOption('--input <file>', 'preference pairs or rankings')
    .option('--max-length <n>', 'tokens per row', num)
    .option('--batch-size <n>', 'rows per forward', num, 8)
    .option('--json', 'print the result as JSON')
    .action(async (f) => {
      const m = await RewardModel.load(f.model);
      const r = await evaluateReward(m, f.input, {
        maxLength: f.maxLength,
        batchSize: f.batchSize,
      });
      if (f.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else
        process.stdout.write(
          `rm eval: accuracy ${(100 * r.accuracy).toFixed(1)}% on ${r.pairs} pairs of ${r.examples} examples (mean margin ${r.margin.toFixed(4)}, loss ${r.loss.toFixed(4)})\n`,
        );
    });

  rm.command('score')
    .description('Rewards for a JSONL of {prompt, completion} records, written as JSONL')
    .requiredOption('--model <dir>', 'reward model directory (or its PEFT adapter)')
    .requiredOption('--input <file>', 'JSONL of {prompt, completion}')
    .requiredOption('--out <file>', 'JSONL: each record with a reward key')
    .option('--max-length <n>', 'tokens per row', num)
    .option('--batch-size <n>', 'rows per forward', num, 8)
    .action(async (f) => {
      const m = await RewardModel.load(f.model);
      const scored = await scoreFile(m, f.input, {
        maxLength: f.maxLength,
        batchSize: f.batchSize,
      });
      // The input records may carry any keys; they are written back as they came, plus reward.
      await writeRecords(f.out, scored, { validate: false, format: 'jsonl' });
      process.stdout.write(`rm score: ${scored.length} rewards written to ${f.out}\n`);
    });

  rm.command('normalize')
    .description(
      'Set the bias so reference completions (demonstrations) score mean 0 (InstructGPT §3.5)',
    )
    .requiredOption('--model <dir>', 'reward model directory (or its PEFT adapter)')
    .requiredOption('--input <file>', 'JSONL of reference {prompt, completion}')
    .requiredOption('--output-dir <dir>', 'where the normalised model goes (a full model)')
    .option('--max-length <n>', 'tokens per row', num)
    .option('--batch-size <n>', 'rows per forward', num, 8)
    .action(async (f) => {
      const m = await RewardModel.load(f.model);
      m.mergeAdapter();
      const r = await normalizeReward(m, f.input, {
        maxLength: f.maxLength,
        batchSize: f.batchSize,
      });
      await m.save(f.outputDir);
      process.stdout.write(
        `rm normalize: mean reward ${r.meanBefore.toFixed(4)} over ${r.records} completions; bias now ${r.bias.toFixed(4)}; written to ${f.outputDir}\n`,
      );
    });
}
