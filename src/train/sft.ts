// Supervised fine-tuning (and, with the loss on every token, language-model pretraining) of an
// instructkit CausalLM. SFT's own part is the data (tokenised prompt/completion, chat, instruction
// or text records, packed into rows with loss masks) and the next-token loss; the engine trainer,
// logging, eval loss, checkpoints with exact resume and the final model (or PEFT adapter) are
// the shared loop's (loop.ts).
import { z } from 'zod';
import { parseConfig } from '../data/config.ts';
import { CausalLM } from '../models/lm.ts';
import { TrainingError } from '../util/errors.ts';
import { batchFeeds, type PackedRow, packExamples, type TokenizedExample } from './data.ts';
import {
  type ExampleSource,
  instructionFormat,
  loadExamples,
  tryInstructionFormat,
} from './examples.ts';
import {
  type LoopDeps,
  runTraining,
  type StepLog,
  specialIds,
  TRAINING_ARGUMENTS,
} from './loop.ts';

export const SftConfig = z.strictObject({
  ...TRAINING_ARGUMENTS,
  packing: z.boolean().default(false),
  /**
   * How {instruction, input, output} records are rendered: 'alpaca' (ALPACA_LAYOUT prompt),
   * 'chat' (through the model's chat template), or a Jinja template of the prompt over
   * instruction and input, e.g. "{{ instruction }}{% if input %}\n\n{{ input }}{% endif %}\nAnswer:".
   * The output is the completion.
   */
  instruction_template: z
    .string()
    .min(1)
    .default('alpaca')
    .superRefine((v, ctx) => {
      const r = tryInstructionFormat(v);
      if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: r });
    }),
  /** Loss on completion / assistant tokens only; false trains on every token (pretraining). */
  completion_only_loss: z.boolean().default(true),
  /**
   * Train with the model's own dropout rates from its config.json (GPT-2's embd_pdrop /
   * resid_pdrop / attn_pdrop, LLaMA / Qwen's attention_dropout), as transformers does in
   * train mode. Masks are seeded per micro-batch from `seed`; evaluation never drops.
   */
  model_dropout: z.boolean().default(false),
});
export type SftConfig = z.infer<typeof SftConfig>;

/** Parses an SFT config; unknown keys and wrong types are ConfigErrors naming the field. */
export function parseSftConfig(raw: unknown, file?: string): SftConfig {
  return parseConfig(SftConfig, raw, { file });
}

export type { StepLog };

export interface SftResult {
  steps: number;
  finalLoss: number;
  evalLoss?: number;
  logs: StepLog[];
  outputDir: string;
  model: CausalLM;
  truncated: number;
  trainRows: number;
}

export interface SftDeps extends LoopDeps {
  /** A model already in memory (instead of loading model_name_or_path). */
  model?: CausalLM;
  /** In-memory examples (instead of reading train_file / eval_file). */
  train?: ExampleSource;
  eval?: ExampleSource;
}

/**
 * Runs SFT (or pretraining, with completion_only_loss false) and returns the trained model.
 * @example await trainSft(parseSftConfig({ model_name_or_path: 'tiny', train_file: 'sft.jsonl', output_dir: 'out' }));
 */
export async function trainSft(cfg: SftConfig, deps: SftDeps = {}): Promise<SftResult> {
  const lm = deps.model ?? (await CausalLM.load(cfg.model_name_or_path));
  const { tok, eosId, padId } = specialIds(lm, cfg);
  const tokOpts = {
    completionOnly: cfg.completion_only_loss,
    eosId,
    instructionFormat: instructionFormat(cfg.instruction_template),
  };
  const trainEx: TokenizedExample[] = await loadExamples(
    deps.train ?? cfg.train_file,
    tok,
    tokOpts,
    lm.tokenizer?.chatTemplate ?? null,
  );
  const packed = packExamples(trainEx, cfg.max_length, cfg.packing);
  if (packed.rows.length === 0)
    throw new TrainingError('no training examples left after tokenisation');
  const evalSrc = deps.eval ?? cfg.eval_file;
  const evalRows: PackedRow[] = evalSrc
    ? packExamples(
        await loadExamples(evalSrc, tok, tokOpts, lm.tokenizer?.chatTemplate ?? null),
        cfg.max_length,
        cfg.packing,
      ).rows
    : [];
  const r = await runTraining({
    name: 'sft',
    cfg,
    config: cfg,
    model: lm,
    train: packed.rows,
    eval: evalRows,
    collate: (rows) => {
      const b = batchFeeds(rows, padId, cfg.max_length);
      return { feeds: b.feeds, weight: b.lossTokens, tokens: b.tokens };
    },
    forward: (o) =>
      lm.trainingBuilder({
        lora: o.lora,
        recompute: o.recompute,
        modelDropout: o.training && cfg.model_dropout,
      }),
    deps,
  });
  return {
    steps: r.steps,
    finalLoss: r.finalLoss,
    ...(r.evalLoss !== undefined ? { evalLoss: r.evalLoss } : {}),
    logs: r.logs,
    outputDir: r.outputDir,
    model: lm,
    truncated: packed.truncated,
    trainRows: packed.rows.length,
  };
}
