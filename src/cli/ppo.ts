// `instructkit ppo`: PPO / PPO-ptx against a reward model or reward functions (TRL PPOConfig
// names; YAML config, flags override it). Flag parsing only: the trainer is train.trainPpo.
import type { Command } from 'commander';
import { readConfigFile } from '../data/config.ts';
import { parsePpoConfig, trainPpo } from '../train/ppo.ts';
import { ConfigError } from '../util/errors.ts';
import { bool, flagsToConfig, num, trainingFlags } from './train.ts';

async function run(flags: Record<string, unknown>): Promise<void> {
  const src = flags.config ? await readConfigFile(String(flags.config)) : { value: {} };
  if (src.value !== null && (typeof src.value !== 'object' || Array.isArray(src.value)))
    throw new ConfigError('expected a mapping of PPOConfig settings', { file: src.file });
  const cfg = parsePpoConfig(
    { ...(src.value as Record<string, unknown>), ...flagsToConfig(flags) },
    src.file,
  );
  const r = await trainPpo(cfg);
  const last = r.logs.at(-1);
  const fmt = (k: string) => (last?.[k] !== undefined ? last[k]!.toFixed(4) : 'n/a');
  process.stdout.write(
    `ppo: ${r.iterations} iterations, ${r.episodes} episodes, ${r.steps} updates; last objective/scores ${fmt('objective/scores')}, objective/kl ${fmt('objective/kl')}; policy written to ${r.outputDir} (value model in value_model/)\n`,
  );
}

export function registerPpo(program: Command): void {
  trainingFlags(
    program
      .command('ppo')
      .description(
        'PPO (InstructGPT; PPO-ptx with --ptx-file/--ptx-coef) against a reward model, with a per-token KL penalty to the SFT model',
      ),
    'PPOConfig',
  )
    .option('--reward-model-path <dir>', 'reward model (rm train): the score and the value init')
    .option('--value-model-path <dir>', 'value model start (default: the reward model)')
    .option('--sft-model-path <dir>', 'reference policy (default: the starting model)')
    .option('--num-ppo-epochs <n>', 'update epochs per rollout batch (TRL 4)', num)
    .option('--num-mini-batches <n>', 'minibatches per rollout batch', num)
    .option('--total-episodes <n>', 'completions sampled over the run', num)
    .option('--kl-coef <x>', 'β of the per-token KL penalty (TRL 0.05)', num)
    .option('--kl-estimator <k>', 'k1 | k3')
    .option('--adap-kl-ctrl <bool>', 'adapt β towards --target over --horizon', bool)
    .option('--target <x>', 'target KL of the adaptive controller', num)
    .option('--horizon <n>', 'horizon of the adaptive controller', num)
    .option('--cliprange <x>', 'policy clip ε', num)
    .option('--vf-coef <x>', 'value loss weight', num)
    .option('--cliprange-value <x>', 'value clip ε', num)
    .option('--gamma <x>', 'GAE discount', num)
    .option('--lam <x>', 'GAE λ', num)
    .option('--whiten-rewards <bool>', 'whiten per-token rewards', bool)
    .option('--response-length <n>', 'max_new_tokens of a rollout', num)
    .option('--temperature <x>', 'rollout temperature', num)
    .option(
      '--missing-eos-penalty <x>',
      'subtracted from the score of a completion without EOS',
      num,
    )
    .option('--ptx-file <file>', 'PPO-ptx: pretraining text, one document per line')
    .option('--ptx-coef <x>', 'PPO-ptx γ (InstructGPT 27.8)', num)
    .action((flags) => run(flags));
}
