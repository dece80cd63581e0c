// bench/generate: decode speed of instructkit's KV-cache generation against llama.cpp (through
// node-llama-cpp's prebuilt CPU build) on the same GGUF export of the built-in tiny model shape:
// single-stream greedy tokens/s and 32-way batched tokens/s, in one run, with both ratios.
// On the tiny shape both sides are dominated by per-token overheads (node-llama-cpp's stay near
// 13 ms a token whatever the model size up to ~85M parameters), so `--shape medium` (d 768,
// 12 layers, ~85M parameters, where weight reads dominate) is the fairer comparison.
// Usage: npx tsx bench/generate.ts [new_tokens=96] [--shape tiny|medium]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';
import { parseHfConfig } from '../src/models/config.ts';
import { generate } from '../src/models/generate.ts';
import { exportGguf } from '../src/models/gguf-export.ts';
import { CausalLM } from '../src/models/lm.ts';
import { parameterCount, tinyLlamaConfig, trainTinyTokenizer } from '../src/models/tiny.ts';
import { env } from '../src/util/env.ts';

const argv = process.argv.slice(2);
const shapeAt = argv.indexOf('--shape');
const SHAPE = shapeAt >= 0 ? argv[shapeAt + 1]! : 'tiny';
if (SHAPE !== 'tiny' && SHAPE !== 'medium') throw new Error(`--shape tiny|medium, not ${SHAPE}`);
const NEW = Number(argv.find((a, i) => /^\d+$/.test(a) && i !== shapeAt + 1) ?? 96);
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
const path = join(mkdtempSync(join(tmpdir(), 'ik-bench-gen-')), 'tiny.gguf');
await exportGguf(path, spec, lm.weights, { tokenizer, fileType: 'f32' });
const prompts = Array.from({ length: 32 }, (_, i) => tokenizer.encode(texts[i]!.slice(0, 24)));

async function ours(batch: number): Promise<number> {
  await generate(lm, prompts.slice(0, batch), { max_new_tokens: 4, stop_token_ids: [] });
  const t0 = performance.now();
  const r = await generate(lm, prompts.slice(0, batch), {
    max_new_tokens: NEW,
    stop_token_ids: [],
  });
  const n = r.reduce((s, x) => s + x.tokens.length, 0);
  return n / ((performance.now() - t0) / 1000);
}

const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: path });

async function theirs(batch: number): Promise<number> {
  const ctx = await model.createContext({
    sequences: batch,
    contextSize: 256 * batch,
    batchSize: 512,
    threads: env.threads,
    flashAttention: false,
  });
  try {
    // One sequence per stream for the whole run; each run starts from an empty history.
    const seqs = prompts.slice(0, batch).map(() => ctx.getSequence());
    const run = async (tokens: number) => {
      let n = 0;
      await Promise.all(
        seqs.map(async (seq, i) => {
          await seq.clearHistory();
          let k = 0;
          for await (const _ of seq.evaluate(prompts[i] as Token[], { temperature: 0 })) {
            n++;
            if (++k >= tokens) break;
          }
        }),
      );
      return n;
    };
    await run(4);
    const t0 = performance.now();
    const n = await run(NEW);
    return n / ((performance.now() - t0) / 1000);
  } finally {
    await ctx.dispose();
  }
}

const oursSingle = await ours(1);
const theirsSingle = await theirs(1);
const oursBatch = await ours(32);
const theirsBatch = await theirs(32);
await model.dispose();
const r2 = (x: number) => Math.round(x * 100) / 100;
console.log(
  `single stream: instructkit ${oursSingle.toFixed(0)} tok/s, llama.cpp ${theirsSingle.toFixed(0)} tok/s`,
);
console.log(
  `32-way batched: instructkit ${oursBatch.toFixed(0)} tok/s, llama.cpp ${theirsBatch.toFixed(0)} tok/s`,
);
console.log(
  JSON.stringify({
    bench: 'generate',
    model: `${SHAPE} llama (${(parameterCount(spec) / 1e6).toFixed(1)}M, f32 GGUF)`,
    threads: env.threads,
    new_tokens: NEW,
    ours_single_tok_s: Math.round(oursSingle),
    llamacpp_single_tok_s: Math.round(theirsSingle),
    ours_batch32_tok_s: Math.round(oursBatch),
    llamacpp_batch32_tok_s: Math.round(theirsBatch),
    ratio_single: r2(oursSingle / theirsSingle),
    ratio_batch32: r2(oursBatch / theirsBatch),
  }),
);
