// The tiny random LLaMA the server tests serve: a BPE tokenizer trained on a few sentences and
// a 2-layer model with a 512-token context (room for long streams), saved as an HF directory.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveCheckpoint } from '../../src/models/checkpoint.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { type LoraAdapter, type LoraPair, parseAdapterConfig } from '../../src/models/peft.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../../src/models/tiny.ts';
import { Rng } from '../../src/util/rng.ts';

const texts = Array.from(
  { length: 100 },
  (_, i) => `Hello number ${i}, the weather is ${['sunny', 'rainy', 'cold'][i % 3]} today.`,
);
export const { tokenizer } = trainTinyTokenizer(texts, 400);
export const CONTEXT = 512;
const spec = tinyLlamaConfig({
  vocabSize: 400,
  eosTokenId: tokenizer.eos!.id,
  padTokenId: tokenizer.pad!.id,
  maxPositions: CONTEXT,
  shape: {
    hiddenSize: 64,
    intermediateSize: 128,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 32,
    initializerRange: 0.2,
  },
});
export const lm = CausalLM.random(spec, 7, tokenizer);

/** Saves the model to a fresh temporary directory and returns it. */
export async function saveTinyModel(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ik-serve-'));
  await saveCheckpoint(dir, {
    spec: lm.spec,
    tensors: lm.weights,
    tokenizer,
    generationConfig: null,
  });
  return dir;
}

/** A rank-4 PEFT adapter on q_proj and v_proj of every layer, with random (non-zero) A and B. */
export function randomAdapter(): LoraAdapter {
  const rng = new Rng('serve-adapter');
  const r = 4;
  const { hiddenSize: d, numHeads, numKvHeads, headDim, numLayers } = lm.spec;
  const modules = new Map<string, LoraPair>();
  const mat = (rows: number, cols: number) => ({
    shape: [rows, cols],
    data: Float32Array.from({ length: rows * cols }, () => 0.5 * rng.normal()),
  });
  for (let l = 0; l < numLayers; l++) {
    modules.set(`model.layers.${l}.self_attn.q_proj`, {
      A: mat(r, d),
      B: mat(numHeads * headDim, r),
    });
    modules.set(`model.layers.${l}.self_attn.v_proj`, {
      A: mat(r, d),
      B: mat(numKvHeads * headDim, r),
    });
  }
  const config = parseAdapterConfig({
    r,
    lora_alpha: 8,
    target_modules: ['q_proj', 'v_proj'],
    base_model_name_or_path: 'tiny',
  });
  return { config, modules };
}
