// llama.cpp (through node-llama-cpp's prebuilt CPU binaries; nothing is downloaded) as an
// independent runtime for the external checks: last-position logits of a token sequence, and
// greedy continuations computed from them.
import assert from 'node:assert/strict';
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token } from 'node-llama-cpp';

let llamaPromise: Promise<Llama> | undefined;
export function llama(): Promise<Llama> {
  llamaPromise ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  return llamaPromise;
}

/** Last-position logits from llama.cpp (f32 KV cache, no flash attention: exact f32 math). */
export async function llamaCppLogits(
  model: LlamaModel,
  ids: number[],
  nVocab: number,
  lora?: string,
): Promise<Float64Array> {
  const ctx = await model.createContext({
    ...(lora !== undefined ? { lora: { adapters: [{ filePath: lora, scale: 1 }] } } : {}),
    contextSize: 256,
    batchSize: 256,
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
    // One thread: on a shared 2-core machine ggml's spinning worker threads wait on each
    // other for seconds per batch; a tiny model needs no parallelism.
    threads: 1,
  });
  try {
    const seq = ctx.getSequence();
    const input: Parameters<typeof seq.controlledEvaluate>[0] = ids.slice(0, -1) as Token[];
    input.push([ids[ids.length - 1] as Token, { generateNext: { logits: true } }]);
    const res = await seq.controlledEvaluate(input);
    const map = res[res.length - 1]?.next.logits;
    assert.ok(map !== undefined && map.size === nVocab, 'llama.cpp returned every logit');
    const out = new Float64Array(map.size);
    for (const [t, v] of map) out[t] = v;
    return out;
  } finally {
    await ctx.dispose();
  }
}

/** Greedy continuation by llama.cpp: argmax of its logits, one token at a time. */
export async function llamaCppGreedy(
  model: LlamaModel,
  ids: number[],
  nVocab: number,
  steps: number,
): Promise<number[]> {
  const seq = [...ids];
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    const logits = await llamaCppLogits(model, seq, nVocab);
    let best = 0;
    for (let t = 1; t < logits.length; t++) if (logits[t]! > logits[best]!) best = t;
    out.push(best);
    seq.push(best);
  }
  return out;
}
