// Shared fixtures of the trainer tests: a tiny tokenizer and LLaMA shape, prompt/completion
// pairs, and a direct masked next-token loss computed from the model's all-position logits in
// float64 (independent of the training graph, packing and batching).
import { CausalLM } from '../../src/models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../../src/models/tiny.ts';

export const corpus = Array.from(
  { length: 60 },
  (_, i) => `Fact ${i}: the colour of item ${i} is ${['red', 'blue', 'green'][i % 3]}.`,
);
export const { tokenizer, bpe } = trainTinyTokenizer(corpus, 400);
export const eos = tokenizer.eos!.id;

export const smallSpec = (maxPositions = 64) =>
  tinyLlamaConfig({
    vocabSize: 400,
    eosTokenId: eos,
    padTokenId: tokenizer.pad!.id,
    maxPositions,
    shape: {
      hiddenSize: 32,
      intermediateSize: 64,
      numLayers: 2,
      numHeads: 2,
      numKvHeads: 1,
      headDim: 16,
    },
  });

export const pairs = corpus.map((c, i) => ({
  prompt: `Q${i}: what colour?\nAnswer:`,
  completion: ` ${c.split(' is ')[1]!.slice(0, -1)}`,
}));

/** Ids and loss mask of a prompt/completion pair by the documented rule: completion + EOS. */
export function pairTokens(prompt: string, completion: string): { ids: number[]; mask: number[] } {
  const p = tokenizer.encode(prompt, { addSpecialTokens: false });
  const c = tokenizer.encode(completion, { addSpecialTokens: false });
  return { ids: [...p, ...c, eos], mask: [...p.map(() => 0), ...c.map(() => 1), 1] };
}

/** A copy of a model's current weights (the trainer updates them in place). */
export function snapshot(lm: CausalLM): CausalLM {
  const w = new Map([...lm.weights].map(([n, t]) => [n, { shape: t.shape, data: t.data.slice() }]));
  return new CausalLM(lm.spec, w, lm.tokenizer);
}

/**
 * Mean −log p(ids[i] | ids[<i]) over positions i with mask[i] = 1 (i ≥ 1), pooled over
 * examples (token-weighted), from lm.logits in float64.
 */
export async function directLoss(
  lm: CausalLM,
  examples: readonly { ids: readonly number[]; mask: readonly number[] }[],
): Promise<number> {
  let total = 0;
  let count = 0;
  for (const ex of examples) {
    const V = lm.spec.vocabSize;
    const logits = (await lm.logits(ex.ids)).data;
    for (let i = 1; i < ex.ids.length; i++) {
      if (ex.mask[i] !== 1) continue;
      const row = logits.subarray((i - 1) * V, i * V);
      let max = -Infinity;
      for (const v of row) if (v > max) max = v;
      let z = 0;
      for (const v of row) z += Math.exp(v - max);
      total += -(row[ex.ids[i]!]! - max - Math.log(z));
      count++;
    }
  }
  return total / count;
}
