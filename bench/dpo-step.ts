// bench/dpo-step: DPO training throughput against SFT on the same model and the same rows, in
// the same run. A LLaMA-shaped model (d 512, 8 heads, 4 layers, SwiGLU 1376, vocab 8192);
// P pairs of a 64-token prompt with a 64-token chosen and a 64-token rejected completion, i.e.
// 2P rows of 128 tokens. SFT trains on exactly those 2P rows (loss on the completion tokens);
// DPO on the P pairs with cached reference log-probs (precompute_ref_log_probs), so both feed
// the same tokens per step and ratio = DPO tokens/s ÷ SFT tokens/s (goal ≥ 0.9). Steps of the
// two alternate, so a busy machine slows both alike; medians are reported.
//
// Also, with a LoRA adapter (r 16 on every projection): the reference pass with the adapter
// disabled (one forward of the base over the 2P rows, the precompute pass) timed against one
// forward of the adapted policy over the same rows (goal: ref / forward ≤ 1); and the LoRA DPO
// step with the reference inside the step graph against the LoRA DPO step with cached
// reference log-probs (the in-graph reference's extra cost, in forwards).
// Usage: npx tsx bench/dpo-step.ts [steps=7] [--pairs=4]
import { Graph, type Var } from '../src/engine/graph.ts';
import { ParamStore } from '../src/engine/params.ts';
import { createSession, type Tensor, tensor } from '../src/engine/runtime.ts';
import { createTrainer, type Feeds, type Trainer } from '../src/engine/step.ts';
import { parseHfConfig } from '../src/models/config.ts';
import { CausalLM } from '../src/models/lm.ts';
import { batchFeeds, type PackedRow } from '../src/train/data.ts';
import {
  collatePairs,
  type PreferencePair,
  preferenceForward,
  referenceLogps,
} from '../src/train/dpo.ts';
import { dpoLoss } from '../src/train/dpo-loss.ts';
import { env } from '../src/util/env.ts';
import { Rng } from '../src/util/rng.ts';

const STEPS = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 7);
const P = Number(process.argv.find((a) => a.startsWith('--pairs='))?.slice(8) ?? 4);
const PROMPT = 64;
const COMPLETION = 64;
const T = PROMPT + COMPLETION;
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits;

const spec = parseHfConfig({
  model_type: 'llama',
  vocab_size: 8192,
  hidden_size: 512,
  intermediate_size: 1376,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 8,
  max_position_embeddings: T,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  initializer_range: 0.02,
  eos_token_id: 2,
  pad_token_id: 0,
});

const rng = new Rng(7);
const ids = (n: number) => Array.from({ length: n }, () => 3 + rng.int(spec.vocabSize - 3));
const pairs: PreferencePair[] = Array.from({ length: P }, () => ({
  prompt: ids(PROMPT),
  chosen: [...ids(COMPLETION - 1), 2],
  rejected: [...ids(COMPLETION - 1), 2],
}));

/** The SFT rows of the same pairs: prompt + completion, loss on the completion tokens. */
function sftRow(prompt: number[], completion: number[]): PackedRow {
  const all = [...prompt, ...completion];
  return {
    ids: all,
    targets: all.map((_, i) => (i + 1 >= prompt.length && i + 1 < all.length ? all[i + 1]! : -100)),
    positions: all.map((_, i) => i),
    segments: all.map(() => 0),
    lossTokens: completion.length,
  };
}

const optimizer = {
  type: 'adamw' as const,
  learning_rate: 1e-6,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  weight_decay: 0,
};
const session = { threads: env.threads };

async function trainer(
  lm: CausalLM,
  build: Parameters<typeof createTrainer>[0]['build'],
  lora: boolean,
) {
  return createTrainer({
    build,
    params: ParamStore.create(lm.paramSpecs({ lora }), { seed: 0 }),
    optimizer,
    max_grad_norm: 1,
    totalSteps: 1000,
    session,
  } as Parameters<typeof createTrainer>[0]);
}

/** Alternating timed steps of several trainers (two warm-up steps each). */
async function alternate(runs: { t: Trainer; feeds: Feeds }[]): Promise<number[][]> {
  for (const r of runs) for (let i = 0; i < 2; i++) await r.t.step(r.feeds);
  const times = runs.map(() => [] as number[]);
  for (let s = 0; s < STEPS; s++)
    for (const [i, r] of runs.entries()) {
      const t0 = performance.now();
      await r.t.step(r.feeds);
      times[i]!.push(performance.now() - t0);
    }
  return times;
}

const dpoLossFn = (
  p: Parameters<typeof dpoLoss>[0],
  ref: Parameters<typeof dpoLoss>[1] | undefined,
) => dpoLoss(p, ref!, { beta: 0.1, lossTypes: ['sigmoid'] });

async function main() {
  const lm = CausalLM.random(spec, 1);
  lm.sessionOptions = session;
  const tokensPerStep = 2 * P * T;

  // ---- full fine-tuning: SFT vs DPO with cached reference log-probs ---------------------------
  const tRef0 = performance.now();
  const ref = await referenceLogps(lm, pairs, { batchSize: P, padId: 0, maxLength: T });
  const precomputeMs = performance.now() - tRef0;
  const cached = pairs.map((p, i) => ({
    ...p,
    refChosen: ref.chosen[i]!,
    refRejected: ref.rejected[i]!,
  }));
  const sftFeeds = batchFeeds(
    [
      ...pairs.map((p) => sftRow(p.prompt, p.chosen)),
      ...pairs.map((p) => sftRow(p.prompt, p.rejected)),
    ],
    0,
    T,
  ).feeds;
  const dpoFeeds = collatePairs(cached, 0, T).feeds;
  const sft = await trainer(lm, lm.trainingBuilder(), false);
  const dpo = await trainer(
    lm,
    preferenceForward(spec, { reference: 'cached', loss: dpoLossFn }),
    false,
  );
  const [sftMs, dpoMs] = await alternate([
    { t: sft, feeds: sftFeeds },
    { t: dpo, feeds: dpoFeeds },
  ]);
  await sft.release();
  await dpo.release();
  const sftTps = tokensPerStep / (median(sftMs!) / 1000);
  const dpoTps = tokensPerStep / (median(dpoMs!) / 1000);

  // ---- LoRA: reference forward (adapter disabled) vs one policy forward ------------------------
  lm.attachLora({ r: 16, lora_alpha: 32, lora_dropout: 0 }, 0);
  const lora = lm.lora!.spec;
  const forwardSession = async (withAdapter: boolean) => {
    const g = new Graph({ name: withAdapter ? 'policy-forward' : 'ref-forward' });
    const params: Record<string, Var> = {};
    for (const [n, t] of withAdapter ? lm.allWeights() : [...lm.weights])
      params[n] = g.input(n, 'float32', t.shape);
    // The DPO step graph's forward half, loss and metrics included, without backward.
    const r = preferenceForward(spec, {
      reference: 'none',
      lora: withAdapter ? lora : undefined,
      loss: (p) => ({ loss: p.chosen.sum(), metrics: {} }),
    })(g, params);
    g.output('loss', r.loss);
    const s = await createSession(g, session);
    const feeds: Record<string, Tensor> = {};
    for (const [n, t] of withAdapter ? lm.allWeights() : [...lm.weights])
      feeds[n] = tensor('float32', t.shape, t.data);
    return async () => {
      const t0 = performance.now();
      await s.run({ ...feeds, ...collatePairs(pairs, 0, T).feeds }, ['loss']);
      return performance.now() - t0;
    };
  };
  const refFwd = await forwardSession(false);
  const polFwd = await forwardSession(true);
  for (let i = 0; i < 2; i++) {
    await refFwd();
    await polFwd();
  }
  const refMs: number[] = [];
  const polMs: number[] = [];
  for (let s = 0; s < STEPS; s++) {
    refMs.push(await refFwd());
    polMs.push(await polFwd());
  }
  const loraCached = await trainer(
    lm,
    preferenceForward(spec, { reference: 'cached', lora, loss: dpoLossFn }),
    true,
  );
  const loraInGraph = await trainer(
    lm,
    preferenceForward(spec, { reference: 'adapter_disabled', lora, loss: dpoLossFn }),
    true,
  );
  const [cachedMs, inGraphMs] = await alternate([
    { t: loraCached, feeds: dpoFeeds },
    { t: loraInGraph, feeds: collatePairs(pairs, 0, T).feeds },
  ]);
  await loraCached.release();
  await loraInGraph.release();

  const result = {
    model: 'llama d512 x4, vocab 8192',
    pairs: P,
    prompt_tokens: PROMPT,
    completion_tokens: COMPLETION,
    tokens_per_step: tokensPerStep,
    steps: STEPS,
    sft_ms_per_step: round(median(sftMs!), 1),
    dpo_ms_per_step: round(median(dpoMs!), 1),
    sft_tokens_per_s: round(sftTps),
    dpo_tokens_per_s: round(dpoTps),
    dpo_over_sft: round(dpoTps / sftTps, 3),
    precompute_ref_ms: round(precomputeMs, 1),
    lora_ref_forward_ms: round(median(refMs), 1),
    lora_policy_forward_ms: round(median(polMs), 1),
    lora_ref_over_forward: round(median(refMs) / median(polMs), 3),
    lora_dpo_cached_ms_per_step: round(median(cachedMs!), 1),
    lora_dpo_in_graph_ref_ms_per_step: round(median(inGraphMs!), 1),
    lora_in_graph_ref_extra_in_forwards: round(
      (median(inGraphMs!) - median(cachedMs!)) / median(polMs),
      3,
    ),
  };
  for (const [k, v] of Object.entries(result))
    if (k !== 'model') process.stdout.write(`${k}: ${v}\n`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
