// Reverse-mode autodiff over the recorded graph: `grad(loss, wrt)` appends the gradient
// subgraph to the same Graph. Only values on a path from `wrt` to `loss` get gradient nodes
// (frozen params never do); fan-out is summed with one Sum node; composites use their own vjp;
// checkpoint regions rebuild their forward inside the backward pass (activation recomputation).
import { ShapeError } from '../util/errors.ts';
import { isFloat } from './dtype.ts';
import type { Graph, Node, OpDef, Region, Var, VjpFn } from './graph.ts';
import { add, full, reshape, slice, sub, sumN } from './ops.ts';
import { apply1 } from './ops-core.ts';
import { fmtShape, shapeEq } from './shape.ts';

/** Options of `grad`. */
export interface GradOpts {
  /** Upstream gradient of `loss` (its shape); required when `loss` is not a scalar. */
  seed?: Var;
  /** Return undefined instead of zeros for `wrt` values the loss does not depend on. */
  allowUnused?: boolean;
}

interface Unit {
  label: string;
  nodes: Node<unknown>[];
  inputs: Var[];
  outputs: Var[];
  vjp: VjpFn | undefined;
  region: Region | undefined;
}

/**
 * Gradients of `loss` with respect to each of `wrt`, as new Vars of the same graph.
 * @example const [dW, dB] = grad(loss, [W, B]);
 */
export function grad(loss: Var, wrt: readonly Var[], opts: GradOpts = {}): (Var | undefined)[] {
  const g = loss.graph;
  for (const w of wrt) {
    if (w.graph !== g) throw new ShapeError('grad', `${w} belongs to another graph`);
    if (w.frozen)
      throw new ShapeError('grad', `param ${w} is frozen`, {
        hint: 'frozen params get no gradient',
      });
    if (!isFloat(w.dtype)) throw new ShapeError('grad', `cannot differentiate w.r.t. ${w}`);
  }
  let seed = opts.seed;
  if (seed === undefined) {
    if (loss.shape.some((d) => d !== 1))
      throw new ShapeError('grad', `loss ${loss} is not a scalar`, { hint: 'pass opts.seed' });
    seed = full(g, loss.shape, 1, loss.dtype);
  } else if (!shapeEq(seed.shape, loss.shape) || seed.dtype !== loss.dtype) {
    throw new ShapeError('grad', `seed ${seed} does not match loss ${loss}`);
  }
  const nodes = [...g.nodes];
  const seedVar = seed;
  const grads = g.scope('grad', () =>
    backprop(g, nodes, undefined, new Map([[loss, seedVar]]), wrt),
  );
  return wrt.map(
    (w) => grads.get(w) ?? (opts.allowUnused ? undefined : full(g, w.shape, 0, w.dtype)),
  );
}

/** Split `nodes` into autodiff units relative to `scope`: primitives and outermost regions. */
function unitsOf(nodes: readonly Node<unknown>[], scope: Region | undefined): Unit[] {
  const units: Unit[] = [];
  const byRegion = new Map<Region, Unit>();
  for (const n of nodes) {
    let outer: Region | undefined;
    for (let r = n.region; r !== undefined && r !== scope; r = r.parent)
      if (r.kind !== 'scope') outer = r;
    if (outer === undefined) {
      const op = n.op as OpDef<unknown>;
      units.push({
        label: op.name,
        nodes: [n],
        inputs: [...n.inputs],
        outputs: n.outputs,
        vjp: op.vjp
          ? (d, need) => (op.vjp as NonNullable<OpDef<unknown>['vjp']>)(n, d, need)
          : undefined,
        region: undefined,
      });
      continue;
    }
    let u = byRegion.get(outer);
    if (!u) {
      u = {
        label: outer.name,
        nodes: [],
        inputs: [],
        outputs: outer.outputs,
        vjp: outer.vjp,
        region: outer,
      };
      byRegion.set(outer, u);
      units.push(u);
    }
    u.nodes.push(n);
  }
  for (const u of byRegion.values()) {
    const region = u.region as Region;
    const inside = new Set(u.nodes.flatMap((n) => n.outputs));
    const external = new Set<Var>();
    for (const n of u.nodes) for (const x of n.inputs) if (!inside.has(x)) external.add(x);
    if (region.kind === 'composite') u.inputs = region.inputs;
    else u.inputs = [...new Set([...region.inputs, ...external])];
    u.inputs = u.inputs.filter((x) => !inside.has(x));
  }
  return units;
}

/** Core reverse sweep over `nodes`; returns the summed gradient of each `wrt` value reached. */
function backprop(
  g: Graph,
  nodes: readonly Node<unknown>[],
  scope: Region | undefined,
  seeds: ReadonlyMap<Var, Var>,
  wrt: readonly Var[],
): Map<Var, Var> {
  const units = unitsOf(nodes, scope);
  // Forward sweep: which values depend on a `wrt` value (and so need a gradient)?
  const needs = new Set<Var>(wrt);
  for (const u of units) {
    if (u.region?.kind === 'composite') checkCaptured(u, needs);
    if (!u.inputs.some((x) => needs.has(x))) continue;
    for (const o of u.outputs) if (isFloat(o.dtype)) needs.add(o);
  }
  const wrtSet = new Set(wrt);
  const terminal = (x: Var) => wrtSet.has(x) || x.node === undefined;
  const contrib = new Map<Var, Var[]>();
  for (const [v, s] of seeds) contrib.set(v, [s]);
  const total = (v: Var): Var | undefined => {
    const c = contrib.get(v);
    if (!c) return undefined;
    if (c.length > 1) {
      const s = sumN(c);
      contrib.set(v, [s]);
      return s;
    }
    return c[0];
  };
  for (let k = units.length - 1; k >= 0; k--) {
    const u = units[k] as Unit;
    const dOuts = u.outputs.map(total);
    if (dOuts.every((d) => d === undefined)) continue;
    if (u.region) checkInternal(u, contrib);
    const need = u.inputs.map((x) => needs.has(x) && isFloat(x.dtype));
    if (!need.some(Boolean)) continue;
    let dIns: (Var | undefined)[];
    if (u.region?.kind === 'checkpoint') dIns = recompute(g, u, dOuts, need);
    else if (u.vjp) dIns = u.vjp(dOuts, need);
    else
      throw new ShapeError(u.label, 'has no gradient', {
        hint: 'detach() its inputs or keep this op out of the differentiated path',
      });
    sequenceGrads(u, dIns, need, terminal);
    u.inputs.forEach((x, i) => {
      const d = dIns[i];
      if (!need[i] || d === undefined) return;
      if (!shapeEq(d.shape, x.shape) || d.dtype !== x.dtype)
        throw new ShapeError(u.label, `vjp returned ${d.dtype}${fmtShape(d.shape)} for input ${x}`);
      const list = contrib.get(x);
      if (list) list.push(d);
      else contrib.set(x, [d]);
    });
  }
  const out = new Map<Var, Var>();
  for (const w of wrt) {
    const t = total(w);
    if (t !== undefined) out.set(w, t);
  }
  return out;
}

/**
 * Order a unit's gradients: the ones flowing further back (to activations) are made to wait for
 * the ones that end here (params, wrt values). onnxruntime schedules by a reverse DFS from the
 * graph's leaf nodes, so a weight gradient nothing consumes would otherwise run at the very
 * end, keeping its inputs (activations and their gradients, in every layer) alive until then.
 */
function sequenceGrads(
  u: Unit,
  dIns: (Var | undefined)[],
  need: readonly boolean[],
  terminal: (x: Var) => boolean,
): void {
  const ends = u.inputs.flatMap((x, i) =>
    need[i] && dIns[i] && terminal(x) ? [dIns[i] as Var] : [],
  );
  if (ends.length === 0) return;
  u.inputs.forEach((x, i) => {
    const d = dIns[i];
    if (need[i] && d !== undefined && !terminal(x)) dIns[i] = orderAfter(d, ends);
  });
}

function checkCaptured(u: Unit, needs: ReadonlySet<Var>): void {
  const inside = new Set(u.nodes.flatMap((n) => n.outputs));
  const declared = new Set(u.inputs);
  for (const n of u.nodes)
    for (const x of n.inputs)
      if (!inside.has(x) && !declared.has(x) && needs.has(x))
        throw new ShapeError(
          u.label,
          `composite uses ${x}, which needs a gradient, without declaring it`,
          {
            hint: 'list every differentiable value the composite reads in its inputs',
          },
        );
}

function checkInternal(u: Unit, contrib: ReadonlyMap<Var, Var[]>): void {
  const outs = new Set(u.outputs);
  for (const n of u.nodes)
    for (const v of n.outputs)
      if (!outs.has(v) && contrib.has(v))
        throw new ShapeError(
          u.label,
          `internal value ${v} of region '${u.label}' is used outside it`,
          {
            hint: 'return it from the region as an output',
          },
        );
}

/**
 * Backward of a checkpoint region: rebuild its forward from the same inputs, then backprop
 * through the copy. The rebuilt inputs carry a zero taken from the upstream gradient, so the
 * copy cannot run before the backward reaches it and ORT cannot merge it with the original.
 */
function recompute(
  g: Graph,
  u: Unit,
  dOuts: readonly (Var | undefined)[],
  need: readonly boolean[],
): (Var | undefined)[] {
  const region = u.region as Region;
  const rebuild = region.rebuild as (...xs: Var[]) => Var[];
  const d0 = dOuts.find((d) => d !== undefined) as Var;
  const first = reshape(slice(reshape(d0, [-1]), 0, 0, 1), []);
  const zero = sub(first, first);
  const fresh = new Map<Var, Var>();
  const xs = region.inputs.map((x) => {
    if (!isFloat(x.dtype) || x.kind === 'param' || x.kind === 'constant') return x;
    const y = add(x, zero.dtype === x.dtype ? zero : zero.cast(x.dtype));
    fresh.set(x, y);
    return y;
  });
  const start = g.nodes.length;
  let scope: Region | undefined;
  let outs: Var[] = [];
  g.scope(`recompute:${region.name}`, () => {
    scope = g.currentRegion;
    outs = rebuild(...xs);
  });
  const rebuilt = g.nodes.slice(start);
  const seeds = new Map<Var, Var>();
  outs.forEach((o, i) => {
    const d = dOuts[i];
    if (d !== undefined) seeds.set(o, d);
  });
  const targets = u.inputs.filter((_, i) => need[i]).map((x) => fresh.get(x) ?? x);
  const grads = backprop(g, rebuilt, scope, seeds, targets);
  return u.inputs.map((x, i) => (need[i] ? grads.get(fresh.get(x) ?? x) : undefined));
}

// x, but only once every dep has been computed: Reshape(x, [0,..,0] + 0·isnan(dep[0])). The
// shape tensor reads one element of each dep, so onnxruntime must run the deps first; the
// Reshape copies every dim (0 = "copy") and aliases x's buffer, so it costs nothing per element.
const ORDER: OpDef<Record<string, never>> = {
  name: 'order_after',
  infer: ([x]) => [{ dtype: x!.dtype, shape: x!.shape }],
  emit(e, n) {
    const [x, ...deps] = n.inputs as [Var, ...Var[]];
    const flags = deps.map((d) => {
      const flat = e.tmp('ord');
      const first = e.tmp('ord');
      const nan = e.tmp('ord');
      const flag = e.tmp('ord');
      e.node('Reshape', [e.name(d), e.constI64([-1])], [flat]);
      e.node('Slice', [flat, e.constI64([0]), e.constI64([1])], [first]);
      e.node(
        isFloat(d.dtype) ? 'IsNaN' : 'Not',
        [isFloat(d.dtype) ? first : castBool(e, first)],
        [nan],
      );
      e.node('Cast', [nan], [flag], { to: { i: 7 } });
      return flag;
    });
    let sum = flags[0] as string;
    if (flags.length > 1) {
      const all = e.tmp('ord');
      sum = e.tmp('ord');
      e.node('Concat', flags, [all], { axis: { i: 0 } });
      e.node('ReduceSum', [all, e.constI64([0])], [sum], { keepdims: { i: 1 } });
    }
    const zero = e.tmp('ord');
    const shape = e.tmp('ord');
    e.node('Mul', [sum, e.constI64([0])], [zero]);
    e.node('Add', [e.constI64(new Array<number>(x.rank).fill(0)), zero], [shape]);
    e.node('Reshape', [e.name(x), shape], [e.name(n.outputs[0]!)]);
  },
  vjp: (n, [dy]) => [dy, ...n.inputs.slice(1).map(() => undefined)],
};

function castBool(e: Parameters<OpDef['emit']>[0], name: string): string {
  const out = e.tmp('ord');
  e.node('Cast', [name], [out], { to: { i: 9 } });
  return out;
}

/**
 * `x` unchanged, but scheduled after every value in `deps` (an ordering edge for onnxruntime,
 * which has no control dependencies). Costs a few scalar nodes, no pass over `x`.
 */
export function orderAfter(x: Var, deps: readonly Var[]): Var {
  const ds = deps.filter((d) => d !== x && !d.shape.includes(0));
  if (ds.length === 0) return x;
  return apply1(ORDER, [x, ...ds], {});
}

const DETACH: OpDef<Record<string, never>> = {
  name: 'detach',
  infer: ([x]) => [{ dtype: x!.dtype, shape: x!.shape }],
  emit(e, n) {
    e.node('Identity', [e.name(n.inputs[0]!)], [e.name(n.outputs[0]!)]);
  },
  vjp: () => [undefined],
};

/** The same value with gradient flow cut (torch's `detach`). */
export function detach(x: Var): Var {
  return apply1(DETACH, [x], {});
}
