// `instructkit sft` and `instructkit pretrain`: a YAML config (TRL SFTConfig names) and/or flags
// → parseSftConfig → trainSft. pretrain is the same trainer with the loss on every token, and
// with --init-tiny it starts from the built-in tiny shape, so a text file is all it needs.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { readConfigFile } from '../data/config.ts';
import { CausalLM } from '../models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../models/tiny.ts';
import { parseSftConfig, trainSft } from '../train/sft.ts';
import { ConfigError } from '../util/errors.ts';

/** model_name_or_path recorded for a model made by --init-tiny. */
const TINY_NAME = 'instructkit-tiny (random init)';

/** `--key value` flags map onto config keys: --learning-rate → learning_rate. */
export function flagsToConfig(flags: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags)) {
    if (v === undefined || k === 'config') continue;
    out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  }
  return out;
}

export const num = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ConfigError(`expected a number, got '${v}'`);
  return n;
};
export const bool = (v: string): boolean => {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(`expected true or false, got '${v}'`);
};

/**
 * The built-in tiny LLaMA, freshly initialised, with a BPE vocabulary trained on the lines of
 * the training text: how the built-in base model is made from text alone.
 */
function tinyFromText(trainFile: string, vocabSize: number, seed: number): CausalLM {
  if (!trainFile.endsWith('.txt'))
    throw new ConfigError('--init-tiny trains its tokenizer on a .txt train file', {
      field: 'train_file',
    });
  let lines: string[];
  try {
    lines = readFileSync(trainFile, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');
  } catch (e) {
    throw new ConfigError(`cannot read: ${(e as Error).message}`, { file: trainFile });
  }
  const { tokenizer } = trainTinyTokenizer(lines, vocabSize);
  const spec = tinyLlamaConfig({
    vocabSize,
    eosTokenId: tokenizer.eos!.id,
    padTokenId: tokenizer.pad!.id,
  });
  return CausalLM.random(spec, seed, tokenizer);
}

async function run(flags: Record<string, unknown>, pretrain: boolean): Promise<void> {
  const { initTiny, vocabSize, ...rest } = flags;
  const src = rest.config ? await readConfigFile(String(rest.config)) : { value: {} };
  if (src.value !== null && (typeof src.value !== 'object' || Array.isArray(src.value))) {
    throw new ConfigError('expected a mapping of SFT settings', { file: src.file });
  }
  const merged: Record<string, unknown> = {
    ...(pretrain ? { completion_only_loss: false, packing: true } : {}),
    ...(initTiny ? { model_name_or_path: TINY_NAME, max_length: 256 } : {}),
    ...(src.value as Record<string, unknown>),
    ...flagsToConfig(rest),
  };
  if (initTiny && merged.model_name_or_path !== TINY_NAME)
    throw new ConfigError('give --init-tiny or a model_name_or_path, not both', {
      field: 'model_name_or_path',
    });
  const cfg = parseSftConfig(merged, src.file);
  const model = initTiny
    ? tinyFromText(cfg.train_file, (vocabSize as number | undefined) ?? 2048, cfg.seed)
    : undefined;
  const r = await trainSft(cfg, model ? { model } : {});
  process.stdout.write(
    `${pretrain ? 'pretrain' : 'sft'}: ${r.steps} steps, final loss ${r.finalLoss.toFixed(4)}${r.evalLoss !== undefined ? `, eval loss ${r.evalLoss.toFixed(4)}` : ''}; model written to ${r.outputDir}${r.truncated ? ` (${r.truncated} examples truncated to max_length)` : ''}\n`,
  );
}

/** The flags of the TrainingArguments keys every trainer shares (train/loop.ts). */
export function trainingFlags(c: Command, configName = 'SFTConfig'): Command {
  return c
    .option('--config <file>', `YAML file with ${configName} keys (flags override it)`)
    .option('--model-name-or-path <dir>', 'HF model directory to start from')
    .option('--train-file <file>', 'training data (JSONL / JSON / Parquet / .txt)')
    .option('--eval-file <file>', 'evaluation data')
    .option('--output-dir <dir>', 'where checkpoints, metrics and the model go')
    .option('--learning-rate <x>', 'peak learning rate', num)
    .option('--num-train-epochs <n>', 'epochs', num)
    .option('--max-steps <n>', 'optimizer steps (overrides epochs)', num)
    .option('--per-device-train-batch-size <n>', 'sequences per micro-batch', num)
    .option('--gradient-accumulation-steps <n>', 'micro-batches per step', num)
    .option('--max-length <n>', 'tokens per sequence', num)
    .option('--warmup-steps <n>', 'linear warmup steps', num)
    .option('--lr-scheduler-type <type>', 'linear | cosine | constant | constant_with_warmup')
    .option('--weight-decay <x>', 'AdamW weight decay', num)
    .option('--max-grad-norm <x>', 'gradient clipping', num)
    .option('--logging-steps <n>', 'log every n steps', num)
    .option('--eval-steps <n>', 'evaluate every n steps', num)
    .option('--save-steps <n>', 'checkpoint every n steps', num)
    .option('--resume-from-checkpoint', 'continue from the newest checkpoint in output_dir')
    .option('--seed <n>', 'random seed', num)
    .option('--use-peft', 'train a LoRA adapter instead of all weights')
    .option('--lora-r <n>', 'LoRA rank', num)
    .option('--lora-alpha <x>', 'LoRA alpha', num)
    .option('--lora-dropout <x>', 'LoRA dropout', num)
    .option('--use-worker <bool>', 'run the engine in a worker thread', bool)
    .option('--disable-tqdm', 'no progress bar');
}

function options(c: Command): Command {
  return trainingFlags(c)
    .option('--packing <bool>', 'pack several examples per sequence', bool)
    .option(
      '--instruction-template <name|jinja>',
      "instruction records: 'alpaca', 'chat' (the model's chat template) or a Jinja prompt template",
    );
}

export function registerTrainCommands(program: Command): void {
  options(
    program
      .command('sft')
      .description('Supervised fine-tuning (full or LoRA) of an HF-format model'),
  ).action((flags) => run(flags, false));
  options(
    program
      .command('pretrain')
      .description('Language-model training with the loss on every token (same trainer as sft)'),
  )
    .option(
      '--init-tiny',
      'start from a fresh built-in tiny LLaMA with a BPE vocabulary trained on the .txt train file',
    )
    .option('--vocab-size <n>', 'vocabulary of --init-tiny', num)
    .action((flags) => run(flags, true));
}
