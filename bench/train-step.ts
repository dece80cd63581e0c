// bench/train-step: full training steps (forward, loss, backward, clip, AdamW in one ONNX graph)
// of a LLaMA-shaped model (d 512, 8 heads, 4 layers, SwiGLU 1376, vocab 8192, seq 256, batch 8)
// and a GPT-2-124M-shaped one (d 768, 12 layers, 12 heads, vocab 50257, seq 256, batch 4).
//
// Reports ms/step (median), tokens/s, model FLOP/s and the ratio to the GEMM peak of a plain
// ORT MatMul measured in the same run. The machine may be shared, so every timed step is paired
// with a peak probe taken right before it (ORT's own MatMul kernel time from its profiler, so
// the binding's output copy does not lower the peak), and ratio_to_peak is the median of the
// per-step ratios; ratio_to_best_peak divides the median step by the best probe of the run.
//
// The breakdown comes from further steps of a profiled trainer: GEMM kernels, the embedding
// gradient (its own line: a GEMM the model FLOP count leaves out), elementwise and other
// kernels (the optimizer's share named apart), the binding's copies (session.run wall time
// minus ORT's model_run: the copy of every output into a new ArrayBuffer, checked against a
// graph that only copies the same output bytes) and the rest of ORT's run outside kernels.
// Usage: npx tsx bench/train-step.ts [steps=5] [--only=llama|gpt2] [--no-gpt2]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph } from '../src/engine/graph.ts';
import { ParamStore } from '../src/engine/params.ts';
import { createSession, type Session, type Tensor, tensor } from '../src/engine/runtime.ts';
import { createTrainer, type Feeds } from '../src/engine/step.ts';
import type { Chunk } from '../src/engine/step-graph.ts';
import { type ModelSpec, parseHfConfig } from '../src/models/config.ts';
import { CausalLM } from '../src/models/lm.ts';
import { expectedTensors } from '../src/models/weights.ts';
import { env } from '../src/util/env.ts';
import { Rng } from '../src/util/rng.ts';

const STEPS = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 5);
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const MODELS = only ? [only] : process.argv.includes('--no-gpt2') ? ['llama'] : ['llama', 'gpt2'];
const PROFILED_STEPS = 3;
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits;

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

/** Profile events of a session's runs so far (ends its profile and deletes the file). */
function readProfile(s: { endProfiling(): void }, dir: string): ProfileEvent[] {
  s.endProfiling();
  const file = readdirSync(dir).find((f) => f.endsWith('.json'));
  if (!file) throw new Error(`no ORT profile in ${dir}`);
  const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as ProfileEvent[];
  rmSync(dir, { recursive: true, force: true });
  return events;
}

/**
 * The GEMM peak probe: plain ORT MatMuls at shapes of the LLaMA step, timed by ORT's own kernel
 * events. `probe()` runs each shape a few times; `read()` gives the best GFLOP/s of each probe.
 */
async function peakProbe() {
  const shapes = [
    [2048, 512, 2048],
    [2048, 1376, 512],
    [1024, 1024, 1024],
  ] as const;
  const rng = new Rng(1);
  const runs = [] as {
    s: Session;
    dir: string;
    feeds: Record<string, Tensor>;
    out: Record<string, Tensor>;
  }[];
  for (const [i, [m, k, n]] of shapes.entries()) {
    const g = new Graph({ name: `peak${i}` });
    g.output('c', g.input('a', 'float32', [m, k]).matmul(g.input('b', 'float32', [k, n])));
    const dir = mkdtempSync(join(tmpdir(), 'ik-peak-'));
    const s = await createSession(g, { threads: env.threads, profilePrefix: join(dir, 'p') });
    const rand = (len: number) => Float32Array.from({ length: len }, () => rng.normal());
    runs.push({
      s,
      dir,
      feeds: {
        a: tensor('float32', [m, k], rand(m * k)),
        b: tensor('float32', [k, n], rand(k * n)),
      },
      out: { c: tensor('float32', [m, n]) },
    });
  }
  const REPS = 3;
  let probes = 0;
  const probe = async () => {
    for (const r of runs) for (let i = 0; i < REPS; i++) await r.s.run(r.feeds, r.out);
    probes++;
  };
  await probe(); // warm-up, dropped below
  const read = async (): Promise<number[]> => {
    const best = new Array<number>(probes).fill(0);
    for (const [i, r] of runs.entries()) {
      const [m, k, n] = shapes[i]!;
      const kernels = readProfile(r.s, r.dir).filter(
        (e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'),
      );
      kernels.forEach((e, j) => {
        const p = Math.floor(j / REPS);
        best[p] = Math.max(best[p]!, (2 * m * k * n) / (e.dur / 1e6) / 1e9);
      });
      await r.s.release();
    }
    return best.slice(1);
  };
  return { probe, read };
}

/** Model FLOPs per step: 6·(matmul parameters incl. the lm head)·tokens + attention 12·L·B·T²·d. */
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

type Category = 'gemm' | 'embedding_grad' | 'optimizer' | 'elementwise';
const GEMM_OPS = new Set(['MatMul', 'FusedMatMul', 'Gemm']);

/** Where a kernel belongs, from the op type and the node name (opType:firstOutput, see onnx.ts). */
function categorise(e: ProfileEvent): Category {
  const node = e.name.slice(0, -'_kernel_time'.length);
  const value = node.slice(node.indexOf(':') + 1);
  if (value.startsWith('embedding_grad/')) return 'embedding_grad';
  if (value.startsWith('optimizer/') || value.startsWith('opt.')) return 'optimizer';
  return GEMM_OPS.has(e.args?.op_name ?? '') ? 'gemm' : 'elementwise';
}

/**
 * The binding's cost for the step's state outputs (`copies` sets of chunks, pre-allocated as in
 * the trainer), from a graph that only copies them.
 */
async function copyOnly(chunks: readonly Chunk[], copies: number): Promise<number> {
  const g = new Graph({ name: 'copy' });
  const n = chunks.reduce((a, c) => a + c.size, 0);
  const feeds: Record<string, Tensor> = {};
  const out: Record<string, Tensor> = {};
  const src = new Float32Array(n).fill(1);
  for (let k = 0; k < copies; k++) {
    const dst = new Float32Array(n);
    chunks.forEach((c, j) => {
      const x = g.input(`x${k}.${j}`, 'float32', [c.size]);
      g.output(`y${k}.${j}`, x);
      feeds[`x${k}.${j}`] = tensor('float32', [c.size], src.subarray(c.offset, c.offset + c.size));
      out[`y${k}.${j}`] = tensor('float32', [c.size], dst.subarray(c.offset, c.offset + c.size));
    });
  }
  const dir = mkdtempSync(join(tmpdir(), 'ik-copy-'));
  const s = await createSession(g, { threads: env.threads, profilePrefix: join(dir, 'p') });
  const walls: number[] = [];
  for (let i = 0; i < 2 + PROFILED_STEPS; i++) {
    const t0 = performance.now();
    await s.run(feeds, out);
    walls.push(performance.now() - t0);
  }
  const runs = readProfile(s, dir).filter((e) => e.cat === 'Session' && e.name === 'model_run');
  await s.release();
  return median(walls.slice(2).map((w, i) => w - runs[i + 2]!.dur / 1000));
}

function batch(spec: ModelSpec, B: number, T: number): Feeds {
  const rng = new Rng(2);
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(spec.vocabSize)));
  return {
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
}

async function benchModel(name: string, spec: ModelSpec, B: number, T: number) {
  const lm = CausalLM.random(spec, 1);
  const feeds = batch(spec, B, T);
  const options = {
    build: lm.trainingBuilder(),
    optimizer: { type: 'adamw' as const, learning_rate: 1e-4, weight_decay: 0.01 },
    max_grad_norm: 1,
  };
  const peak = await peakProbe();
  const trainer = await createTrainer({
    ...options,
    params: ParamStore.create(lm.paramSpecs(), { seed: 0 }),
  });
  // Two warm-up steps: each writes one of the two buffer sets for the first time.
  for (let i = 0; i < 2; i++) await trainer.step(feeds);
  const times: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    await peak.probe();
    const t0 = performance.now();
    await trainer.step(feeds);
    times.push(performance.now() - t0);
  }
  const n = trainer.plan.layout.size;
  const chunks = trainer.plan.chunks;
  const stateOutputs = 1 + trainer.plan.slots.length;
  await trainer.release();
  const peaks = await peak.read();

  // Profiled steps on a fresh trainer for the breakdown.
  const dir = mkdtempSync(join(tmpdir(), `ik-prof-${name}-`));
  const profiled = await createTrainer({
    ...options,
    params: ParamStore.create(lm.paramSpecs(), { seed: 0 }),
    session: { profilePrefix: join(dir, 'p') },
  });
  const walls: number[] = [];
  for (let i = 0; i < 2 + PROFILED_STEPS; i++) {
    const t0 = performance.now();
    await profiled.step(feeds);
    walls.push(performance.now() - t0);
  }
  const events = readProfile(profiled, dir);
  await profiled.release();
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
  const from = runs[2]!.ts;
  const per = (x: number) => x / 1000 / PROFILED_STEPS;
  const byCat: Record<Category, number> = {
    gemm: 0,
    embedding_grad: 0,
    optimizer: 0,
    elementwise: 0,
  };
  const byOp = new Map<string, number>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < from) continue;
    byCat[categorise(e)] += e.dur;
    const op = e.args?.op_name ?? 'unknown';
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
  }
  // Means over the profiled steps, so that the parts add up to the step.
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const wall = mean(walls.slice(2));
  const modelRun = mean(runs.slice(2).map((r) => r.dur / 1000));
  const kernels = per(Object.values(byCat).reduce((a, b) => a + b, 0));

  const ids = feeds.input_ids!.data as BigInt64Array;
  const distinct = new Set(ids).size;
  const ms = median(times);
  const flops = stepFlops(spec, B, T);
  const gflops = flops / (ms / 1000) / 1e9;
  const ratios = times.map((t, i) => flops / (t / 1000) / 1e9 / peaks[i]!);
  return {
    ms: round(ms),
    tokens_per_s: round((B * T) / (ms / 1000)),
    gflop_per_step: round(flops / 1e9, 1),
    gflops: round(gflops, 1),
    peak_gflops_probes: peaks.map((p) => round(p)),
    ratio_to_peak: round(median(ratios), 3),
    ratio_to_best_peak: round(gflops / Math.max(...peaks), 3),
    breakdown: {
      step_ms: round(wall),
      gemm_ms: round(per(byCat.gemm)),
      embedding_grad: {
        ms: round(per(byCat.embedding_grad)),
        // one-hot [N, U] GEMM over the U distinct ids of the batch
        gflop: round((2 * B * T * distinct * spec.hiddenSize) / 1e9, 1),
        distinct_ids: distinct,
      },
      elementwise_ms: round(per(byCat.elementwise + byCat.optimizer)),
      optimizer_ms: round(per(byCat.optimizer)),
      copy_ms: round(wall - modelRun),
      copy_only_graph_ms: round(await copyOnly(chunks, stateOutputs)),
      state_outputs: chunks.length * stateOutputs,
      other_ms: round(modelRun - kernels),
      state_mb_copied: round((n * 4 * stateOutputs) / 2 ** 20),
      top_ops_ms: Object.fromEntries(
        [...byOp]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 10)
          .map(([k, v]) => [k, round(per(v), 1)]),
      ),
    },
  };
}

const specs: Record<string, { spec: ModelSpec; B: number; T: number; label: string }> = {
  llama: {
    label: 'llama-shaped (d512 L4 V8192, B8 T256)',
    B: 8,
    T: 256,
    spec: parseHfConfig({
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
    }),
  },
  gpt2: {
    label: 'gpt2-124M-shaped (B4 T256)',
    B: 4,
    T: 256,
    spec: parseHfConfig({
      model_type: 'gpt2',
      vocab_size: 50257,
      n_embd: 768,
      n_layer: 12,
      n_head: 12,
      n_positions: 1024,
      layer_norm_epsilon: 1e-5,
      activation_function: 'gelu_new',
    }),
  },
};

const results: Record<string, Awaited<ReturnType<typeof benchModel>>> = {};
for (const m of MODELS) {
  const s = specs[m];
  if (!s) throw new Error(`unknown model '${m}' (llama or gpt2)`);
  results[m] = await benchModel(m, s.spec, s.B, s.T);
  console.log(`${s.label}:`, JSON.stringify(results[m]));
}
const first = results[MODELS[0]!]!;
console.log(
  JSON.stringify({
    bench: 'train-step',
    threads: env.threads,
    steps: STEPS,
    ...results,
    ratio_to_peak: first.ratio_to_peak,
  }),
);
