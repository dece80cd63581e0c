// bench/rl-step: one GRPO iteration split into weight sync, rollout, scoring, reference
// log-probs and update (the engine step: forward + backward + AdamW), and the rollout's tokens/s
// over bench/generate's batched tokens/s (generate(), 32 rows, same model, same new tokens) in
// the same run; the goal is a ratio ≥ 0.8. Rollouts sample at temperature 1 with EOS as stop;
// the baseline decodes greedily without stops, as bench/generate does. Step 1 (session
// compilation) is left out; figures are medians over the remaining steps.
// Usage: npx tsx bench/rl-step.ts [new_tokens=64] [--steps 4] [--shape tiny|medium] [--peft]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHfConfig } from '../src/models/config.ts';
import { generate } from '../src/models/generate.ts';
import { CausalLM } from '../src/models/lm.ts';
import { parameterCount, tinyLlamaConfig, trainTinyTokenizer } from '../src/models/tiny.ts';
import { parseGrpoConfig, trainGrpo } from '../src/train/grpo.ts';
import type { RewardSource } from '../src/train/rewards.ts';

const argv = process.argv.slice(2);
const flag = (k: string) => {
  const i = argv.indexOf(`--${k}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const SHAPE = flag('shape') ?? 'tiny';
if (SHAPE !== 'tiny' && SHAPE !== 'medium') throw new Error(`--shape tiny|medium, not ${SHAPE}`);
const STEPS = Number(flag('steps') ?? 4);
const PEFT = argv.includes('--peft');
const NEW = Number(argv.find((a, i) => /^\d+$/.test(a) && !argv[i - 1]?.startsWith('--')) ?? 64);
const ROWS = 32;
const G = 8;

const texts = Array.from(
  { length: 400 },
  (_, i) =>
    `Sentence ${i}: the ${['red', 'blue', 'green'][i % 3]} box holds ${i % 13} small stones.`,
);
const { tokenizer } = trainTinyTokenizer(texts, 2048);
const tiny = tinyLlamaConfig({ eosTokenId: tokenizer.eos!.id, padTokenId: tokenizer.pad!.id });
const spec =
  SHAPE === 'tiny'
    ? tiny
    : parseHfConfig({
        model_type: 'llama',
        architectures: ['LlamaForCausalLM'],
        vocab_size: tiny.vocabSize,
        hidden_size: 768,
        intermediate_size: 2048,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        num_key_value_heads: 12,
        head_dim: 64,
        hidden_act: 'silu',
        max_position_embeddings: 256,
        rms_norm_eps: 1e-5,
        rope_theta: 10000,
        tie_word_embeddings: true,
        initializer_range: 0.02,
        eos_token_id: tokenizer.eos!.id,
        pad_token_id: tokenizer.pad!.id,
        torch_dtype: 'float32',
      });
const lm = CausalLM.random(spec, 1, tokenizer);
const promptTexts = texts.slice(0, ROWS).map((t) => t.slice(0, 24));
const prompts = promptTexts.map((t) => tokenizer.encode(t));

async function generateTps(): Promise<number> {
  await generate(lm, prompts, { max_new_tokens: 4, stop_token_ids: [] });
  const t0 = performance.now();
  const r = await generate(lm, prompts, { max_new_tokens: NEW, stop_token_ids: [] });
  const n = r.reduce((s, x) => s + x.tokens.length, 0);
  return n / ((performance.now() - t0) / 1000);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor((s.length - 1) / 2)]!;
};

const before = await generateTps();
const len: RewardSource = {
  name: 'length',
  async score(b) {
    return b.map((x) => x.completion.length);
  },
};
const timings: {
  step: number;
  sync: number;
  rollout: number;
  scoring: number;
  reference: number;
}[] = [];
const rolloutTokens = new Map<number, number>();
const stepEnd: number[] = [];
const stepStart = performance.now();
await trainGrpo(
  parseGrpoConfig({
    model_name_or_path: 'in-memory',
    train_file: 'in-memory',
    output_dir: join(mkdtempSync(join(tmpdir(), 'ik-bench-rl-')), 'out'),
    reward_funcs: [{ type: 'exact_match' }],
    num_generations: G,
    per_device_train_batch_size: ROWS,
    max_prompt_length: 32,
    max_completion_length: NEW,
    beta: 0.04,
    max_steps: STEPS,
    logging_steps: 1,
    use_peft: PEFT,
    use_worker: true,
    disable_tqdm: true,
  }),
  {
    model: lm,
    train: promptTexts.slice(0, ROWS / G).map((prompt) => ({ prompt })),
    rewards: [len],
    onTiming: (t) => timings.push(t),
    onRollouts: (s, rs) =>
      rolloutTokens.set(
        s,
        rs.reduce((n, r) => n + r.completion.length, 0),
      ),
    onLog: () => stepEnd.push(performance.now()),
  },
);
const after = await generateTps();

const rows = timings.map((t, i) => {
  const total = stepEnd[i]! - (i === 0 ? stepStart : stepEnd[i - 1]!);
  return {
    ...t,
    total,
    update: total - t.sync - t.rollout - t.scoring - t.reference,
    rolloutTps: rolloutTokens.get(t.step)! / (t.rollout / 1000),
  };
});
const steady = rows.slice(1);
const generateBatched = (before + after) / 2;
const rolloutTps = median(steady.map((r) => r.rolloutTps));
const result = {
  bench: 'rl-step',
  shape: SHAPE,
  parameters: parameterCount(spec),
  peft: PEFT,
  rows: ROWS,
  num_generations: G,
  new_tokens: NEW,
  steps_measured: steady.length,
  iteration_ms: median(steady.map((r) => r.total)),
  sync_ms: median(steady.map((r) => r.sync)),
  rollout_ms: median(steady.map((r) => r.rollout)),
  scoring_ms: median(steady.map((r) => r.scoring)),
  reference_ms: median(steady.map((r) => r.reference)),
  update_ms: median(steady.map((r) => r.update)),
  rollout_tokens_per_s: rolloutTps,
  generate_batched_tokens_per_s: generateBatched,
  generate_before_after: [before, after],
  rollout_over_generate: rolloutTps / generateBatched,
};
for (const r of rows)
  process.stderr.write(
    `step ${r.step + 1}: total ${r.total.toFixed(0)} ms (sync ${r.sync.toFixed(1)}, rollout ${r.rollout.toFixed(0)}, scoring ${r.scoring.toFixed(1)}, reference ${r.reference.toFixed(0)}, update ${r.update.toFixed(0)}), rollout ${r.rolloutTps.toFixed(0)} tok/s\n`,
  );
console.log(JSON.stringify(result));
