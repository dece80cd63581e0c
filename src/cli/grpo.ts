// `instructkit grpo`: a YAML config (TRL GRPOConfig names; reward_funcs as a list) and/or flags →
// parseGrpoConfig → trainGrpo. Flag parsing only. Relative reward module and reward model
// paths resolve from the config file's directory.
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { readConfigFile } from '../data/config.ts';
import { parseGrpoConfig, trainGrpo } from '../train/grpo.ts';
import { ConfigError } from '../util/errors.ts';

const num = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ConfigError(`expected a number, got '${v}'`);
  return n;
};

/** `--key value` flags map onto config keys: --learning-rate → learning_rate. */
function flagsToConfig(flags: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags)) {
    if (v === undefined || k === 'config' || k === 'rewardModule' || k === 'exactMatch') continue;
    out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  }
  return out;
}

export function registerGrpo(program: Command): void {
  program
    .command('grpo')
    .description('GRPO with verifiable rewards (TRL GRPOConfig names) from prompt-only data')
    .option('--config <file>', 'YAML file with GRPOConfig keys (flags override it)')
    .option('--model-name-or-path <dir>', 'HF model directory to start from (e.g. an SFT model)')
    .option('--train-file <file>', 'prompt-only JSONL ({"prompt": ...} plus reward fields)')
    .option('--output-dir <dir>', 'where checkpoints, metrics and the model go')
    .option('--reward-module <file>', 'a module exporting reward(prompt, completion, record)')
    .option('--exact-match <field>', 'exact match against this record field as the reward')
    .option('--num-generations <n>', 'completions per prompt (default 8)', num)
    .option('--max-completion-length <n>', 'tokens per completion', num)
    .option('--max-prompt-length <n>', 'prompt tokens kept', num)
    .option('--temperature <x>', 'sampling temperature (default 1)', num)
    .option('--beta <x>', 'k3 KL coefficient (default 0: no reference)', num)
    .option('--epsilon <x>', 'clip range (default 0.2)', num)
    .option('--num-iterations <n>', 'updates per generated batch', num)
    .option('--loss-type <type>', 'grpo | dr_grpo | dapo | bnpo (default dapo)')
    .option('--scale-rewards <how>', 'group | batch | none')
    .option('--missing-eos-penalty <x>', 'subtracted from rewards of unfinished completions', num)
    .option('--learning-rate <x>', 'peak learning rate (default 1e-6)', num)
    .option('--max-steps <n>', 'optimizer steps (overrides epochs)', num)
    .option('--num-train-epochs <n>', 'epochs over the prompts', num)
    .option('--per-device-train-batch-size <n>', 'completions per micro-batch', num)
    .option('--gradient-accumulation-steps <n>', 'micro-batches per step', num)
    .option('--logging-steps <n>', 'log every n steps', num)
    .option('--save-steps <n>', 'checkpoint every n steps', num)
    .option('--resume-from-checkpoint', 'continue from the newest checkpoint in output_dir')
    .option('--seed <n>', 'random seed', num)
    .option('--use-peft', 'train a LoRA adapter instead of all weights')
    .option('--disable-tqdm', 'no progress bar')
    .action(async (flags: Record<string, unknown>) => {
      const src = flags.config ? await readConfigFile(String(flags.config)) : { value: {} };
      if (src.value !== null && (typeof src.value !== 'object' || Array.isArray(src.value)))
        throw new ConfigError('expected a mapping of GRPOConfig settings', { file: src.file });
      const raw: Record<string, unknown> = {
        ...(src.value as Record<string, unknown>),
        ...flagsToConfig(flags),
      };
      const extra = [
        ...(flags.rewardModule ? [{ type: 'module', path: String(flags.rewardModule) }] : []),
        ...(flags.exactMatch ? [{ type: 'exact_match', field: String(flags.exactMatch) }] : []),
      ];
      if (extra.length > 0)
        raw.reward_funcs = [...((raw.reward_funcs as unknown[] | undefined) ?? []), ...extra];
      const cfg = parseGrpoConfig(raw, src.file);
      const r = await trainGrpo(cfg, { baseDir: src.file ? dirname(src.file) : process.cwd() });
      const last = r.logs[r.logs.length - 1];
      const m = (k: string) => (last?.[k] !== undefined ? ` ${k} ${last[k]!.toFixed(4)}` : '');
      process.stdout.write(
        `grpo: ${r.steps} steps, final loss ${r.finalLoss.toFixed(4)};${m('reward')}${m('kl')}${m('completions/mean_length')}; written to ${r.outputDir}\n`,
      );
    });
}
