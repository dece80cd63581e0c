// Reward sources for online RL (GRPO, PPO), one interface: a reward model directory (an HF
// *ForSequenceClassification saved by `rm train`), a TypeScript module exporting
// `reward(prompt, completion, record)`, an OpenAI-compatible judge (through the synth client:
// cache, retries), and a built-in exact match against the record's reference. Several combine
// as a weighted sum (TRL's reward_funcs / reward_weights); completions that never reached EOS
// lose missing_eos_penalty (TRL's PPOConfig key; trl#3750 for where it must apply).
import { basename, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { RewardModel } from '../models/reward.ts';
import { LlmClient, LlmClientConfig } from '../synth/client.ts';
import { ConfigError, InstructkitError } from '../util/errors.ts';

/** A reward that could not be computed: names the source and the record. */
export class RewardError extends InstructkitError {
  readonly source: string;
  readonly record: number | undefined;
  constructor(
    source: string,
    record: number | undefined,
    message: string,
    opts: { hint?: string; cause?: unknown } = {},
  ) {
    super(
      'E_REWARD',
      `reward ${source}${record !== undefined ? `, record ${record}` : ''}: ${message}`,
      opts,
    );
    this.source = source;
    this.record = record;
  }
}

/** What a reward sees of one completion. */
export interface RewardInput {
  prompt: string;
  completion: string;
  /** The dataset record the prompt came from (reference answers, metadata). */
  record: Readonly<Record<string, unknown>>;
  /** Index of the record in the training set (for error messages). */
  index: number;
  /** The completion ended with EOS. */
  eos: boolean;
}

/** One reward function over a batch of completions. */
export interface RewardSource {
  /** Names the source in errors (the module's path, the judge's URL, ...). */
  readonly name: string;
  /** Short key of its metric `rewards/<id>/mean` (TRL logs the function's name). @default name */
  readonly id?: string;
  score(batch: readonly RewardInput[]): Promise<number[]>;
  close?(): Promise<void>;
}

const ModelSource = z.strictObject({
  type: z.literal('model'),
  /** A reward model directory (HF *ForSequenceClassification or its PEFT adapter). */
  path: z.string(),
  batch_size: z.number().int().positive().default(8),
});
const ModuleSource = z.strictObject({
  type: z.literal('module'),
  /** A .ts / .js / .mjs file exporting `reward(prompt, completion, record)`. */
  path: z.string(),
  /** The export to call. @default 'reward' */
  export: z.string().default('reward'),
});
const JudgeSource = z.strictObject({
  type: z.literal('judge'),
  client: LlmClientConfig,
  /**
   * The user message; {prompt}, {completion} and {reference} are filled in. The reply's first
   * number is the reward.
   */
  template: z
    .string()
    .default(
      'Rate the response to the instruction from 0 (useless) to 10 (perfect). Reply with the number only.\n\nInstruction:\n{prompt}\n\nResponse:\n{completion}',
    ),
  /** The judge's number is divided by this. @default 10 */
  scale: z.number().positive().default(10),
  max_tokens: z.number().int().positive().default(8),
});
const ExactMatchSource = z.strictObject({
  type: z.literal('exact_match'),
  /** Record field holding the reference answer (a string or a list of strings). */
  field: z.string().default('reference'),
});
/** One entry of reward_funcs. */
export const RewardFunc = z.discriminatedUnion('type', [
  ModelSource,
  ModuleSource,
  JudgeSource,
  ExactMatchSource,
]);
export type RewardFunc = z.infer<typeof RewardFunc>;

/** The config keys of the reward (shared by GRPOConfig and PPOConfig). */
export const REWARD_ARGUMENTS = {
  reward_funcs: z.array(RewardFunc).min(1),
  /** One weight per reward function. @default all 1 */
  reward_weights: z.array(z.number()).optional(),
  /** Subtracted from the reward of a completion that never reached EOS. */
  missing_eos_penalty: z.number().min(0).optional(),
};

/** SQuAD / Super-NI normalisation: lower case, no ASCII punctuation, collapsed whitespace. */
export function normalizeAnswer(s: string): string {
  return s
    .toLowerCase()
    .replace(/[!-/:-@[-`{-~]/g, '')
    .split(/\s+/)
    .filter((w) => w !== '')
    .join(' ');
}

const numberOf = (source: string, index: number, v: unknown): number => {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new RewardError(
      source,
      index,
      `returned ${typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? typeof v)}, not a finite number`,
    );
  return v;
};

/** Built-in: 1 when the completion equals (normalised) the record's reference, else 0. */
export function exactMatchReward(field = 'reference'): RewardSource {
  const name = `exact_match(${field})`;
  return {
    name,
    id: 'exact_match',
    async score(batch) {
      return batch.map((x) => {
        const ref = x.record[field];
        const refs = typeof ref === 'string' ? [ref] : Array.isArray(ref) ? ref : undefined;
        if (!refs || refs.some((r) => typeof r !== 'string'))
          throw new RewardError(name, x.index, `the record has no string field '${field}'`);
        const got = normalizeAnswer(x.completion);
        return refs.some((r) => normalizeAnswer(r as string) === got) ? 1 : 0;
      });
    },
  };
}

type RewardFn = (
  prompt: string,
  completion: string,
  record: Readonly<Record<string, unknown>>,
) => unknown;

/** A module's reward function (dynamic import; relative paths from `baseDir`). */
export async function moduleReward(
  path: string,
  exportName = 'reward',
  baseDir = process.cwd(),
): Promise<RewardSource> {
  const file = isAbsolute(path) ? path : resolve(baseDir, path);
  let mod: Record<string, unknown>;
  try {
    // TypeScript through tsx's tsImport: a bare import() of a .ts file outside an ESM package
    // would be loaded as CommonJS and fail on its `export`.
    mod = (
      /\.[cm]?ts$/.test(file)
        ? await (await import('tsx/esm/api')).tsImport(pathToFileURL(file).href, import.meta.url)
        : await import(pathToFileURL(file).href)
    ) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(
      `cannot load reward module ${file}: ${(e as Error).message}`,
      { file, field: 'reward_funcs' },
      { cause: e },
    );
  }
  const fn = mod[exportName];
  if (typeof fn !== 'function')
    throw new ConfigError(`${file} does not export a function '${exportName}'`, {
      file,
      field: 'reward_funcs',
    });
  const name = `module ${file}`;
  return {
    name,
    id: basename(file).replace(/\.[cm]?[jt]s$/, ''),
    async score(batch) {
      const out: number[] = [];
      for (const x of batch) {
        let v: unknown;
        try {
          v = await (fn as RewardFn)(x.prompt, x.completion, x.record);
        } catch (e) {
          throw new RewardError(name, x.index, `threw: ${(e as Error)?.message ?? String(e)}`, {
            cause: e,
          });
        }
        out.push(numberOf(name, x.index, v));
      }
      return out;
    },
  };
}

/** A reward model directory scoring prompt + completion (+ EOS when the completion ended). */
export async function modelReward(path: string, batchSize = 8): Promise<RewardSource> {
  const rm = await RewardModel.load(path);
  const tok = rm.tokenizer;
  if (!tok)
    throw new ConfigError(`reward model ${path} has no tokenizer`, { file: path, field: 'path' });
  const eos = tok.eos?.id ?? (typeof rm.spec.eosTokenId === 'number' ? rm.spec.eosTokenId : null);
  const name = `model ${path}`;
  return {
    name,
    id: 'reward_model',
    async score(batch) {
      // Prompt and completion encoded apart, as the reward model was trained (preference
      // tokenisation); the score is read at the last real token, never at padding.
      const enc = (t: string) => (t === '' ? [] : tok.encode(t, { addSpecialTokens: false }));
      const rows = batch.map((x) => [
        ...enc(x.prompt),
        ...enc(x.completion),
        ...(x.eos && eos !== null ? [eos] : []),
      ]);
      const s = await rm.score(rows, { batchSize });
      return s.map((v, i) => numberOf(name, batch[i]!.index, v));
    },
  };
}

/** An OpenAI-compatible judge through the synth client (its cache and retries). */
export function judgeReward(
  cfg: Extract<RewardFunc, { type: 'judge' }>,
  referenceField = 'reference',
): RewardSource {
  const client = new LlmClient(cfg.client);
  const name = `judge ${cfg.client.endpoints.map((e) => e.base_url).join(',')}`;
  return {
    name,
    id: 'judge',
    async score(batch) {
      return Promise.all(
        batch.map(async (x) => {
          const ref = x.record[referenceField];
          const content = cfg.template
            .replaceAll('{prompt}', x.prompt)
            .replaceAll('{completion}', x.completion)
            .replaceAll('{reference}', typeof ref === 'string' ? ref : '');
          let reply: string;
          try {
            const r = await client.chat({
              messages: [{ role: 'user', content }],
              temperature: 0,
              max_tokens: cfg.max_tokens,
            });
            reply = r.choices[0]?.message.content ?? '';
          } catch (e) {
            throw new RewardError(name, x.index, (e as Error).message, { cause: e });
          }
          const m = /-?\d+(?:\.\d+)?/.exec(reply);
          if (!m)
            throw new RewardError(
              name,
              x.index,
              `the judge replied ${JSON.stringify(reply)}, no number`,
            );
          return Number(m[0]) / cfg.scale;
        }),
      );
    },
  };
}

/** The reward sources of a config (modules resolved from `baseDir`). */
export async function loadRewardSources(
  funcs: readonly RewardFunc[],
  baseDir = process.cwd(),
): Promise<RewardSource[]> {
  const out: RewardSource[] = [];
  for (const f of funcs) {
    if (f.type === 'model')
      out.push(
        await modelReward(isAbsolute(f.path) ? f.path : resolve(baseDir, f.path), f.batch_size),
      );
    else if (f.type === 'module') out.push(await moduleReward(f.path, f.export, baseDir));
    else if (f.type === 'judge') out.push(judgeReward(f));
    else out.push(exactMatchReward(f.field));
  }
  return out;
}

/** Per-completion total and per-source rewards. */
export interface ScoredBatch {
  /** Σ_k w_k · r_k − missing_eos_penalty (when no EOS). */
  total: Float64Array;
  /** Each source's raw rewards, by name. */
  bySource: Map<string, Float64Array>;
}

/** Scores a batch with every source and combines them (TRL: weighted sum, then the EOS penalty). */
export async function scoreRewards(
  sources: readonly RewardSource[],
  batch: readonly RewardInput[],
  o: { weights?: readonly number[]; missing_eos_penalty?: number } = {},
): Promise<ScoredBatch> {
  if (o.weights && o.weights.length !== sources.length)
    throw new ConfigError(
      `reward_weights has ${o.weights.length} weights for ${sources.length} reward functions`,
      { field: 'reward_weights' },
    );
  const total = new Float64Array(batch.length);
  const bySource = new Map<string, Float64Array>();
  for (let k = 0; k < sources.length; k++) {
    const s = sources[k]!;
    const r = await s.score(batch);
    if (r.length !== batch.length)
      throw new RewardError(s.name, undefined, `returned ${r.length} rewards for ${batch.length}`);
    const arr = Float64Array.from(r);
    bySource.set(s.name, arr);
    const w = o.weights?.[k] ?? 1;
    for (let i = 0; i < arr.length; i++) total[i]! += w * arr[i]!;
  }
  if (o.missing_eos_penalty)
    for (let i = 0; i < batch.length; i++) if (!batch[i]!.eos) total[i]! -= o.missing_eos_penalty;
  return { total, bySource };
}
