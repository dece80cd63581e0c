// Gradient checking: `checkOp` builds a float64 graph for an op or composite, takes the
// autodiff gradient of sum(out ⊙ R) for a fixed random R, and compares it with central finite
// differences (and the forward with an optional plain-TS reference). Used by the op tests.
import { Rng } from '../util/rng.ts';
import { grad } from './autodiff.ts';
import type { DType, TypedArray } from './dtype.ts';
import { allocTyped, isFloat } from './dtype.ts';
import { Graph, type Var } from './graph.ts';
import { mul } from './ops.ts';
import type { Tensor } from './runtime.ts';
import { createSession, tensor } from './runtime.ts';
import { fmtShape, isStatic } from './shape.ts';

/** One input of a checked op. Floats are float64 and differentiated unless `grad` is false. */
export interface CheckInput {
  shape: readonly number[];
  /** @default 'float64' */
  dtype?: DType;
  /** Fixed values; otherwise floats are N(0,1)·scale + shift and ints uniform in [low, high). */
  values?: ArrayLike<number>;
  /** Integer range (exclusive high) or, for floats, scale of the normal draw. @default 0..4 */
  low?: number;
  high?: number;
  /** Float draws: N(0, scale²) + shift. @default 1, 0 */
  scale?: number;
  shift?: number;
  /** Differentiate w.r.t. this input. @default true for floats */
  grad?: boolean;
}

/** Options of `checkOp`. */
export interface CheckOpOptions {
  /** @default 1234 */
  seed?: number;
  /** Finite-difference step. @default 1e-6 */
  eps?: number;
  /** Pass when |analytic − numeric| <= atol + rtol·|numeric|. @default 1e-5, 1e-7 */
  rtol?: number;
  atol?: number;
  /** Plain-TS forward on the float64 input data (row-major), compared with the graph's output. */
  reference?: (...xs: Float64Array[]) => ArrayLike<number>;
  /** Tolerance of the forward comparison (absolute + relative). @default 1e-9 */
  refTol?: number;
  /** Differentiate the reference numerically instead of the graph (for ops ORT runs in f32). */
  fdOnReference?: boolean;
  /** Check at most this many entries per input (a seeded sample). @default all */
  maxEntries?: number;
}

/** What `checkOp` measured. */
export interface CheckResult {
  /** Entries compared. */
  checked: number;
  maxAbsErr: number;
  /** Worst |a − n| / (atol + rtol·|n|); passing means <= 1. */
  worst: number;
  /** Max abs difference to the reference forward, when one was given. */
  refErr?: number;
}

function draw(rng: Rng, spec: CheckInput): TypedArray {
  const dtype = spec.dtype ?? 'float64';
  const n = spec.shape.reduce((p, q) => p * q, 1);
  const out = allocTyped(dtype, n);
  for (let i = 0; i < n; i++) {
    let v: number;
    if (spec.values) v = spec.values[i] as number;
    else if (isFloat(dtype)) v = rng.normal() * (spec.scale ?? 1) + (spec.shift ?? 0);
    else v = (spec.low ?? 0) + rng.int((spec.high ?? 4) - (spec.low ?? 0));
    if (dtype === 'int64') (out as BigInt64Array)[i] = BigInt(v);
    else (out as Float64Array)[i] = v;
  }
  return out;
}

function buildGraph(
  name: string,
  specs: readonly CheckInput[],
  build: (...xs: Var[]) => Var,
  withGrad: boolean,
  r: Float64Array,
) {
  const g = new Graph({ name: `check-${name}${withGrad ? '' : '-fwd'}` });
  const xs = specs.map((s, i) => g.input(`x${i}`, s.dtype ?? 'float64', s.shape));
  const out = build(...xs);
  if (out.dtype !== 'float64')
    throw new Error(`checkOp ${name}: output must be float64, got ${out}`);
  if (!isStatic(out.shape))
    throw new Error(`checkOp ${name}: output shape ${fmtShape(out.shape)} must be static`);
  const rc = g.constant(r, out.shape as number[], 'float64');
  const loss = mul(out, rc).sum();
  g.output('out', out);
  g.output('loss', loss);
  const gradIdx = specs
    .map((s, i) => (isFloat(s.dtype ?? 'float64') && s.grad !== false ? i : -1))
    .filter((i) => i >= 0);
  if (withGrad) {
    const ds = grad(
      loss,
      gradIdx.map((i) => xs[i] as Var),
    );
    for (const [k, d] of ds.entries()) g.output(`d${gradIdx[k]}`, d as Var);
  }
  return { g, gradIdx, outShape: out.shape as number[] };
}

/**
 * Check an op's gradient (and optionally its forward) in float64. Throws with a description
 * of the worst entry when a check fails; resolves to the measured errors otherwise.
 * @example await checkOp('tanh', [{ shape: [2, 3] }], (x) => x.tanh(), { reference: (x) => x.map(Math.tanh) });
 */
export async function checkOp(
  name: string,
  specs: readonly CheckInput[],
  build: (...xs: Var[]) => Var,
  opts: CheckOpOptions = {},
): Promise<CheckResult> {
  const rng = new Rng(opts.seed ?? 1234);
  const data = specs.map((s) => draw(rng, s));
  const probe = new Graph();
  const outProbe = build(
    ...specs.map((s, i) => probe.input(`x${i}`, s.dtype ?? 'float64', s.shape)),
  );
  const outN = (outProbe.shape as number[]).reduce((p, q) => p * q, 1);
  const r = Float64Array.from({ length: outN }, () => rng.normal());
  const full = buildGraph(name, specs, build, true, r);
  const fwd = buildGraph(name, specs, build, false, r);
  const session = await createSession(full.g, { threads: 1 });
  const fwdSession = await createSession(fwd.g, { threads: 1 });
  const feeds = (ds: readonly TypedArray[]): Record<string, Tensor> =>
    Object.fromEntries(
      ds.map((d, i) => [`x${i}`, tensor(specs[i]!.dtype ?? 'float64', specs[i]!.shape, d)]),
    );
  const res = await session.run(feeds(data));
  const result: CheckResult = { checked: 0, maxAbsErr: 0, worst: 0 };

  if (opts.reference) {
    const ref = opts.reference(
      ...data.map((d) => Float64Array.from(d as ArrayLike<number>, Number)),
    );
    const got = res.out!.data as Float64Array;
    if (ref.length !== got.length)
      throw new Error(`checkOp ${name}: reference has ${ref.length} values, graph ${got.length}`);
    const tol = opts.refTol ?? 1e-9;
    let err = 0;
    for (let i = 0; i < got.length; i++) {
      const e = Math.abs((got[i] as number) - (ref[i] as number));
      err = Math.max(err, e);
      if (!(e <= tol * (1 + Math.abs(ref[i] as number))))
        throw new Error(
          `checkOp ${name}: forward[${i}] = ${got[i]}, reference ${ref[i]} (tol ${tol})`,
        );
    }
    result.refErr = err;
  }

  const lossAt = async (ds: TypedArray[]): Promise<number> => {
    if (opts.fdOnReference && opts.reference) {
      const out = opts.reference(
        ...ds.map((d) => Float64Array.from(d as ArrayLike<number>, Number)),
      );
      let s = 0;
      for (let i = 0; i < out.length; i++) s += (out[i] as number) * (r[i] as number);
      return s;
    }
    const o = await fwdSession.run(feeds(ds), ['loss']);
    return (o.loss!.data as Float64Array)[0] as number;
  };
  const eps = opts.eps ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  const atol = opts.atol ?? 1e-7;
  for (const i of full.gradIdx) {
    const analytic = res[`d${i}`]!.data as Float64Array;
    const x = data[i] as Float64Array;
    let idx = Array.from({ length: x.length }, (_, k) => k);
    if (opts.maxEntries !== undefined && idx.length > opts.maxEntries)
      idx = rng.sample(idx, opts.maxEntries);
    for (const k of idx) {
      const orig = x[k] as number;
      x[k] = orig + eps;
      const lp = await lossAt(data);
      x[k] = orig - eps;
      const lm = await lossAt(data);
      x[k] = orig;
      const numeric = (lp - lm) / (2 * eps);
      const a = analytic[k] as number;
      const err = Math.abs(a - numeric);
      const ratio = err / (atol + rtol * Math.abs(numeric));
      result.checked++;
      result.maxAbsErr = Math.max(result.maxAbsErr, err);
      if (!(ratio <= 1))
        throw new Error(
          `checkOp ${name}: d/dx${i}[${k}] autodiff ${a}, finite difference ${numeric} (|err| ${err.toExponential(2)}, rtol ${rtol}, atol ${atol})`,
        );
      result.worst = Math.max(result.worst, ratio);
    }
  }
  await session.release();
  await fwdSession.release();
  return result;
}
