// `instructkit dpo` and `instructkit orpo`: a YAML config (TRL DPOConfig / ORPOConfig names)
// and/or flags → parseDpoConfig / parseOrpoConfig → trainDpo / trainOrpo. Flag parsing only.
import type { Command } from 'commander';
import { readConfigFile } from '../data/config.ts';
import { type PreferenceResult, parseDpoConfig, trainDpo } from '../train/dpo.ts';
import { parseOrpoConfig, trainOrpo } from '../train/orpo.ts';
import { ConfigError } from '../util/errors.ts';
import { trainingFlags } from './train.ts';

/** `--key value` flags map onto config keys: --learning-rate → learning_rate. */
function flagsToConfig(flags: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags)) {
    if (v === undefined || k === 'config') continue;
    out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  }
  return out;
}

const num = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ConfigError(`expected a number, got '${v}'`);
  return n;
};
const bool = (v: string): boolean => {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(`expected true or false, got '${v}'`);
};
const list = (v: string): string[] =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const nums = (v: string): number[] => list(v).map(num);

async function merged(flags: Record<string, unknown>, what: string) {
  const src = flags.config ? await readConfigFile(String(flags.config)) : { value: {} };
  if (src.value !== null && (typeof src.value !== 'object' || Array.isArray(src.value)))
    throw new ConfigError(`expected a mapping of ${what} settings`, { file: src.file });
  return {
    raw: { ...(src.value as Record<string, unknown>), ...flagsToConfig(flags) },
    file: src.file,
  };
}

function summary(name: string, r: PreferenceResult): string {
  const last = r.logs[r.logs.length - 1];
  const m = (k: string) => (last?.[k] !== undefined ? ` ${k} ${last[k]!.toFixed(4)}` : '');
  const skipped = r.skipped.skipped
    ? `\n${r.skipped.skipped} records skipped:\n${r.skipped.reasons.map((s) => `  ${s.split('\n')[0]}`).join('\n')}`
    : '';
  return `${name}: ${r.steps} steps on ${r.pairs} pairs (reference: ${r.reference}${r.refCache ? `, ${r.refCache.cached ? 'reused' : 'wrote'} ${r.refCache.file}` : ''}), final loss ${r.finalLoss.toFixed(4)};${m('rewards/accuracies')}${m('rewards/margins')}${r.evalLoss !== undefined ? ` eval loss ${r.evalLoss.toFixed(4)}` : ''}; written to ${r.outputDir}${r.truncated ? ` (${r.truncated} completions cut to max_length)` : ''}${skipped}\n`;
}

function options(c: Command, what: string): Command {
  return trainingFlags(c, what)
    .option('--beta <x>', 'β (default 0.1)', num)
    .option('--disable-dropout <bool>', 'no dropout in model or adapter (default true)', bool)
    .option('--skip-invalid', 'count and list bad records (file:line) instead of stopping');
}

export function registerPreferenceCommands(program: Command): void {
  options(
    program
      .command('dpo')
      .description('Direct Preference Optimization (TRL DPOConfig names) from preference data'),
    'DPOConfig',
  )
    .option('--loss-type <list>', 'sigmoid, ipo, hinge, robust, sft (comma-separated)', list)
    .option('--loss-weights <list>', 'one weight per loss type', nums)
    .option('--label-smoothing <x>', 'ε of cDPO / robust', num)
    .option('--precompute-ref-log-probs', 'reference log-probs once, cached on disk')
    .option('--ref-logps-cache-dir <dir>', 'where cached reference log-probs go')
    .action(async (flags: Record<string, unknown>) => {
      const { raw, file } = await merged(flags, 'DPOConfig');
      process.stdout.write(summary('dpo', await trainDpo(parseDpoConfig(raw, file))));
    });
  options(
    program
      .command('orpo')
      .description('ORPO, reference-free (TRL ORPOConfig names), from preference data'),
    'ORPOConfig',
  ).action(async (flags: Record<string, unknown>) => {
    const { raw, file } = await merged(flags, 'ORPOConfig');
    process.stdout.write(summary('orpo', await trainOrpo(parseOrpoConfig(raw, file))));
  });
}
