// bench/train-step: full training steps (forward, loss, backward, clip, AdamW in one ONNX graph)
// of a LLaMA-shaped model (d 512, 8 heads, 4 layers, SwiGLU 1376, vocab 8192, seq 256, batch 8)
// and a GPT-2-124M-shaped one (d 768, 12 layers, 12 heads, vocab 50257, seq 256, batch 4).
// Reports ms/step (median), tokens/s, model FLOP/s and the ratio to the GEMM peak of a plain
// ORT MatMul measured in the same run (before and after each model, best of both), plus a
// breakdown from ORT's profiler: GEMM kernels, other kernels, and time outside the kernels
// (the binding's copies and scheduling).
// Usage: npx tsx bench/train-step.ts [steps=5] [--no-gpt2]
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph } from '../src/engine/graph.ts';
import { ParamStore } from '../src/engine/params.ts';
import { createSession, tensor } from '../src/engine/runtime.ts';
import { createTrainer } from '../src/engine/step.ts';
import { type ModelSpec, parseHfConfig } from '../src/models/config.ts';
import { CausalLM } from '../src/models/lm.ts';
import { expectedTensors } from '../src/models/weights.ts';
import { env } from '../src/util/env.ts';
import { Rng } from '../src/util/rng.ts';

const STEPS = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 5);
const WITH_GPT2 = !process.argv.includes('--no-gpt2');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** GFLOP/s of a plain ORT MatMul at a few large square-ish shapes (best of several runs). */
async function matmulPeak(): Promise<number> {
  let best = 0;
  for (const [m, k, n] of [
    [2048, 512, 2048],
    [2048, 1376, 512],
    [1024, 1024, 1024],
  ] as const) {
    const g = new Graph({ name: 'peak' });
    g.output('c', g.input('a', 'float32', [m, k]).matmul(g.input('b', 'float32', [k, n])));
    const s = await createSession(g, { threads: env.threads });
    const rng = new Rng(1);
    const feeds = {
      a: tensor(
        'float32',
        [m, k],
        Float32Array.from({ length: m * k }, () => rng.normal()),
      ),
      b: tensor(
        'float32',
        [k, n],
        Float32Array.from({ length: k * n }, () => rng.normal()),
      ),
    };
    const out = { c: tensor('float32', [m, n]) };
    for (let i = 0; i < 3; i++) await s.run(feeds, out);
    const times: number[] = [];
    for (let i = 0; i < 12; i++) {
      const t0 = performance.now();
      await s.run(feeds, out);
      times.push(performance.now() - t0);
    }
    best = Math.max(best, (2 * m * k * n) / (median(times) / 1000) / 1e9);
    await s.release();
  }
  return best;
}

/** Training FLOPs per step: 6·(matmul parameters incl. the lm head)·tokens + attention 12·L·B·T²·d. */
function stepFlops(spec: ModelSpec, B: number, T: number): number {
  let matmulParams = 0;
  for (const [name, shape] of expectedTensors(spec)) {
    if (
      shape.length !== 2 ||
      name.includes('embed_tokens') ||
      name.includes('wte') ||
      name.includes('wpe')
    )
      continue;
    matmulParams += shape[0]! * shape[1]!;
  }
  if (spec.tieWordEmbeddings) matmulParams += spec.vocabSize * spec.hiddenSize;
  return 6 * matmulParams * B * T + 12 * spec.numLayers * B * T * T * spec.hiddenSize;
}

interface Profile {
  gemmMs: number;
  otherMs: number;
  kernelMs: number;
  top: [string, number][];
}

function readProfile(dir: string): Profile {
  const file = readdirSync(dir).find((f) => f.endsWith('.json'))!;
  const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    cat: string;
    name: string;
    dur: number;
    args?: { op_name?: string };
  }[];
  const byOp = new Map<string, number>();
  let runs = 0;
  for (const e of events) {
    if (e.cat === 'Session' && e.name === 'model_run') runs++;
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const op = e.args?.op_name ?? 'unknown';
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur / 1000);
  }
  const per = (x: number) => x / Math.max(1, runs);
  const gemm = ['MatMul', 'FusedMatMul', 'Gemm'].reduce((s, k) => s + (byOp.get(k) ?? 0), 0);
  const total = [...byOp.values()].reduce((a, b) => a + b, 0);
  return {
    gemmMs: per(gemm),
    otherMs: per(total - gemm),
    kernelMs: per(total),
    top: [...byOp]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([k, v]) => [k, Math.round(per(v) * 10) / 10]),
  };
}

async function benchModel(name: string, spec: ModelSpec, B: number, T: number) {
  const lm = CausalLM.random(spec, 1);
  const rng = new Rng(2);
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(spec.vocabSize)));
  const feeds = {
    input_ids: tensor('int64', [B, T], ids),
    position_ids: tensor(
      'int64',
      [B, T],
      BigInt64Array.from({ length: B * T }, (_, i) => BigInt(i % T)),
    ),
    segment_ids: tensor('int64', [B, T], new BigInt64Array(B * T)),
    targets: tensor(
      'int64',
      [B, T],
      BigInt64Array.from({ length: B * T }, (_, i) => (i % T === T - 1 ? -100n : ids[i + 1]!)),
    ),
  };
  const options = {
    build: lm.trainingBuilder(),
    params: ParamStore.create(lm.paramSpecs(), { seed: 0 }),
    optimizer: { type: 'adamw' as const, learning_rate: 1e-4, weight_decay: 0.01 },
    max_grad_norm: 1,
  };
  const trainer = await createTrainer(options);
  await trainer.step(feeds);
  const times: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    await trainer.step(feeds);
    times.push(performance.now() - t0);
  }
  await trainer.release();
  // One more profiled step on a fresh trainer for the breakdown.
  const dir = mkdtempSync(join(tmpdir(), `ik-prof-${name}-`));
  const profiled = await createTrainer({
    ...options,
    params: ParamStore.create(lm.paramSpecs(), { seed: 0 }),
    session: { profilePrefix: join(dir, 'p') },
  });
  await profiled.step(feeds);
  const t0 = performance.now();
  await profiled.step(feeds);
  const profiledMs = performance.now() - t0;
  await profiled.release();
  const prof = readProfile(dir);
  const ms = median(times);
  const flops = stepFlops(spec, B, T);
  return {
    ms,
    tokens_per_s: Math.round((B * T) / (ms / 1000)),
    gflop_per_step: Math.round(flops / 1e8) / 10,
    gflops: Math.round(flops / (ms / 1000) / 1e8) / 10,
    profile: {
      step_ms: Math.round(profiledMs),
      gemm_ms: Math.round(prof.gemmMs),
      elementwise_and_other_kernels_ms: Math.round(prof.otherMs),
      outside_kernels_ms: Math.round(Math.max(0, profiledMs - prof.kernelMs)),
      top_ops_ms: Object.fromEntries(prof.top),
    },
  };
}

const llamaSpec = parseHfConfig({
  model_type: 'llama',
  vocab_size: 8192,
  hidden_size: 512,
  intermediate_size: 1376,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 8,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
});
const gpt2Spec = parseHfConfig({
  model_type: 'gpt2',
  vocab_size: 50257,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_positions: 1024,
  layer_norm_epsilon: 1e-5,
  activation_function: 'gelu_new',
});

const peakBefore = await matmulPeak();
const llama = await benchModel('llama', llamaSpec, 8, 256);
const peakMid = await matmulPeak();
const gpt2 = WITH_GPT2 ? await benchModel('gpt2', gpt2Spec, 4, 256) : undefined;
const peakAfter = WITH_GPT2 ? await matmulPeak() : peakMid;
const peak = Math.max(peakBefore, peakMid, peakAfter);
const report = (r: Awaited<ReturnType<typeof benchModel>>) => ({
  ...r,
  ms: Math.round(r.ms),
  ratio_to_peak: Math.round((r.gflops / peak) * 1000) / 1000,
});
console.log(
  `ORT MatMul peak ${peak.toFixed(1)} GFLOP/s (runs: ${[peakBefore, peakMid, peakAfter].map((p) => p.toFixed(0)).join(', ')}), threads ${env.threads}`,
);
console.log('llama-shaped (d512 L4 V8192, B8 T256):', JSON.stringify(report(llama)));
if (gpt2) console.log('gpt2-124M-shaped (B4 T256):', JSON.stringify(report(gpt2)));
console.log(
  JSON.stringify({
    bench: 'train-step',
    threads: env.threads,
    peak_gflops: Math.round(peak * 10) / 10,
    llama: report(llama),
    ...(gpt2 ? { gpt2: report(gpt2) } : {}),
    ratio_to_peak: report(llama).ratio_to_peak,
  }),
);
