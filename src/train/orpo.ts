// ORPO (Hong et al. 2024): reference-free preference optimisation, NLL of the chosen completion
// plus β times the odds-ratio term (dpo-loss.ts orpoLoss), on the same data, collator and
// forward as DPO (dpo.ts) with no reference pass. ORPOConfig names and defaults (TRL).
import { z } from 'zod';
import { parseConfig } from '../data/config.ts';
import {
  collatePairs,
  PREFERENCE_ARGUMENTS,
  type PreferenceDeps,
  type PreferenceResult,
  preferenceForward,
  preparePreferenceRun,
} from './dpo.ts';
import { orpoLoss } from './dpo-loss.ts';
import { runTraining } from './loop.ts';

export const OrpoConfig = z.strictObject({
  ...PREFERENCE_ARGUMENTS,
  learning_rate: z.number().positive().default(1e-6),
});
export type OrpoConfig = z.infer<typeof OrpoConfig>;

/** Parses an ORPO config; unknown keys and wrong types are ConfigErrors naming the field. */
export function parseOrpoConfig(raw: unknown, file?: string): OrpoConfig {
  return parseConfig(OrpoConfig, raw, { file });
}

/** ORPO's logged metrics (TRL names). */
export const ORPO_METRICS = [
  'rewards/chosen',
  'rewards/rejected',
  'rewards/accuracies',
  'rewards/margins',
  'logps/chosen',
  'logps/rejected',
  'nll_loss',
  'log_odds_ratio',
  'log_odds_chosen',
] as const;

/**
 * Odds Ratio Preference Optimization on the shared loop.
 * @example await trainOrpo(parseOrpoConfig({ model_name_or_path: 'base', train_file: 'prefs.jsonl', output_dir: 'orpo' }));
 */
export async function trainOrpo(
  cfg: OrpoConfig,
  deps: PreferenceDeps = {},
): Promise<PreferenceResult> {
  const run = await preparePreferenceRun(cfg, deps);
  const { lm, padId } = run;
  const r = await runTraining({
    name: 'orpo',
    cfg: run.loopCfg,
    config: cfg,
    model: lm,
    train: run.train,
    eval: run.eval,
    collate: (pairs) => collatePairs(pairs, padId, cfg.max_length),
    forward: (o) =>
      preferenceForward(lm.spec, {
        ...o,
        reference: 'none',
        loss: (p) => orpoLoss(p, { beta: cfg.beta }),
      }),
    metrics: ORPO_METRICS,
    deps,
  });
  return {
    ...r,
    model: lm,
    pairs: run.train.length,
    skipped: run.skipped,
    truncated: run.truncated,
    reference: 'none',
  };
}
