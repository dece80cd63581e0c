// Shape-moving op table entries: Reshape, Transpose, Slice, Pad, Concat, Split, Unsqueeze,
// Squeeze, Expand, plus `full` and `arange` constructors. Gradients move the upstream
// gradient back (inverse permutation, padding, splitting, summing broadcast axes).
import { ShapeError } from '../util/errors.ts';
import type { DType } from './dtype.ts';
import type { OpDef, Var } from './graph.ts';
import { apply1, sameDtype, sumTo } from './ops-core.ts';
import type { Dim, Shape } from './shape.ts';
import {
  broadcast,
  canonDim,
  dimAdd,
  dimDiv,
  dimEq,
  fmtShape,
  normAxis,
  numel,
  shapeEq,
} from './shape.ts';

const RESHAPE: OpDef<{ dims: Shape }> = {
  name: 'reshape',
  infer: ([x], a) => [{ dtype: x!.dtype, shape: a.dims }],
  emit(e, n) {
    const x = n.inputs[0]!;
    e.node(
      'Reshape',
      [e.name(x), e.shapeTensor(n.attrs.dims, { copyFrom: x.shape })],
      [e.name(n.outputs[0]!)],
    );
  },
  vjp: (n, [dy]) => [reshape(dy!, n.inputs[0]!.shape)],
};

/** Reshape to `dims`; one dim may be -1 (inferred). Element counts must match symbolically. */
export function reshape(x: Var, dims: readonly Dim[]): Var {
  const known = dims.filter((d) => d !== -1);
  if (dims.length - known.length > 1)
    throw new ShapeError('reshape', `more than one -1 in ${fmtShape(dims)}`);
  const total = numel(x.shape);
  let out: Dim[] = dims.map(canonDim);
  if (known.length < dims.length) {
    const rest = dimDiv(total, numel(known));
    if (rest === undefined)
      throw new ShapeError(
        'reshape',
        `cannot infer -1 reshaping ${fmtShape(x.shape)} to ${fmtShape(dims)}`,
      );
    out = dims.map((d) => (d === -1 ? rest : canonDim(d)));
  } else if (!dimEq(total, numel(out))) {
    throw new ShapeError('reshape', `cannot reshape ${fmtShape(x.shape)} to ${fmtShape(dims)}`, {
      hint: 'element counts differ',
    });
  }
  if (shapeEq(out, x.shape)) return x;
  return apply1(RESHAPE, [x], { dims: out });
}

const TRANSPOSE: OpDef<{ perm: readonly number[] }> = {
  name: 'transpose',
  infer: ([x], a) => [{ dtype: x!.dtype, shape: a.perm.map((p) => x!.shape[p]!) }],
  emit(e, n) {
    e.node('Transpose', [e.name(n.inputs[0]!)], [e.name(n.outputs[0]!)], {
      perm: { ints: n.attrs.perm },
    });
  },
  vjp: (n, [dy]) => {
    const inv: number[] = [];
    n.attrs.perm.forEach((p, i) => {
      inv[p] = i;
    });
    return [transpose(dy!, inv)];
  },
};

/** Permute dims: output dim i is input dim perm[i]. */
export function transpose(x: Var, perm: readonly number[]): Var {
  const p = perm.map((q) => normAxis('transpose', q, x.rank));
  if (p.length !== x.rank || new Set(p).size !== p.length)
    throw new ShapeError('transpose', `bad perm [${perm}] for ${fmtShape(x.shape)}`);
  if (p.every((q, i) => q === i)) return x;
  return apply1(TRANSPOSE, [x], { perm: p });
}

interface SliceAttrs {
  axis: number;
  start: number;
  end: number;
}

// ONNX Slice clamps ends to the dim, so any huge end means "to the end".
const TO_END = Number.MAX_SAFE_INTEGER;

const SLICE: OpDef<SliceAttrs> = {
  name: 'slice',
  infer: ([x], a) => {
    const shape = [...x!.shape];
    shape[a.axis] = sliceLen(x!.shape[a.axis]!, a.start, a.end, x!.shape);
    return [{ dtype: x!.dtype, shape }];
  },
  emit(e, n) {
    const { axis, start, end } = n.attrs;
    const endName = e.constI64([Number.isFinite(end) ? end : TO_END]);
    e.node(
      'Slice',
      [e.name(n.inputs[0]!), e.constI64([start]), endName, e.constI64([axis])],
      [e.name(n.outputs[0]!)],
    );
  },
  vjp: (n, [dy]) => {
    const x = n.inputs[0]!;
    const { axis, start, end } = n.attrs;
    const d = x.shape[axis]!;
    if (typeof d !== 'number')
      throw new ShapeError(
        'slice',
        `gradient of a slice along symbolic dim '${d}' is not supported`,
      );
    const s = start < 0 ? start + d : start;
    const len = sliceLen(d, start, end, x.shape) as number;
    const pads = new Array<number>(2 * x.rank).fill(0);
    pads[axis] = s;
    pads[x.rank + axis] = d - s - len;
    return [pad(dy!, pads)];
  },
};

function sliceLen(d: Dim, start: number, end: number, shape: Shape): Dim {
  if (typeof d === 'number') {
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    return Math.max(clamp(Number.isFinite(end) ? end : d) - clamp(start), 0);
  }
  // Symbolic axis: only lengths that do not depend on the dim are representable.
  if (start === 0 && !Number.isFinite(end)) return d;
  if (start < 0 && !Number.isFinite(end)) return -start;
  if ((start >= 0 && end >= 0) || (start < 0 && end < 0)) {
    if (Number.isFinite(end) && end > start) return end - start;
  }
  throw new ShapeError(
    'slice',
    `slice [${start}, ${end}) of symbolic dim '${d}' in ${fmtShape(shape)}`,
    {
      hint: 'use a static shape bucket or a slice whose length does not depend on the dim',
    },
  );
}

/** Slice `[start, end)` of `axis`; negative indices count from the end, `end` may be Infinity. */
export function slice(x: Var, axis: number, start: number, end = Number.POSITIVE_INFINITY): Var {
  const ax = normAxis('slice', axis, x.rank);
  return apply1(SLICE, [x], { axis: ax, start, end });
}

const PAD: OpDef<{ pads: readonly number[] }> = {
  name: 'pad',
  infer: ([x], a) => [
    {
      dtype: x!.dtype,
      shape: x!.shape.map((d, i) => {
        const extra = a.pads[i]! + a.pads[i + x!.rank]!;
        return extra === 0 ? d : dimAdd(d, extra);
      }),
    },
  ],
  emit(e, n) {
    e.node('Pad', [e.name(n.inputs[0]!), e.constI64(n.attrs.pads)], [e.name(n.outputs[0]!)]);
  },
  vjp: (n, [dy]) => {
    const x = n.inputs[0]!;
    let g = dy!;
    for (let i = 0; i < x.rank; i++) {
      const b = n.attrs.pads[i]!;
      const e = n.attrs.pads[i + x.rank]!;
      if (b !== 0 || e !== 0) g = slice(g, i, b, e === 0 ? Number.POSITIVE_INFINITY : -e);
    }
    return [g];
  },
};

/** Zero-pad: `pads` is [begin_0..begin_{r-1}, end_0..end_{r-1}] (ONNX Pad order). */
export function pad(x: Var, pads: readonly number[]): Var {
  if (pads.length !== 2 * x.rank || pads.some((p) => p < 0 || !Number.isInteger(p)))
    throw new ShapeError('pad', `bad pads [${pads}] for ${fmtShape(x.shape)}`);
  return apply1(PAD, [x], { pads });
}

const CONCAT: OpDef<{ axis: number }> = {
  name: 'concat',
  infer: (xs, a) => {
    const d = sameDtype('concat', xs);
    const first = xs[0]!.shape;
    let total: Dim = 0;
    for (const x of xs) {
      if (x.rank !== first.length || x.shape.some((s, i) => i !== a.axis && !dimEq(s, first[i]!)))
        throw new ShapeError(
          'concat',
          `shapes differ off axis ${a.axis}: ${xs.map((v) => fmtShape(v.shape)).join(' vs ')}`,
        );
      total = dimAdd(total, x.shape[a.axis]!);
    }
    const shape = [...first];
    shape[a.axis] = total;
    return [{ dtype: d, shape }];
  },
  emit(e, n) {
    e.node(
      'Concat',
      n.inputs.map((v) => e.name(v)),
      [e.name(n.outputs[0]!)],
      {
        axis: { i: n.attrs.axis },
      },
    );
  },
  vjp: (n, [dy]) => {
    const sizes = n.inputs.map((x) => x.shape[n.attrs.axis]!);
    if (!sizes.every((s) => typeof s === 'number'))
      throw new ShapeError('concat', 'gradient of a concat along a symbolic axis is not supported');
    return split(dy!, n.attrs.axis, sizes as number[]);
  },
};

/** Concatenate along `axis`. */
export function concat(xs: readonly Var[], axis: number): Var {
  if (xs.length === 0) throw new ShapeError('concat', 'needs at least one input');
  if (xs.length === 1) return xs[0] as Var;
  const ax = normAxis('concat', axis, xs[0]!.rank);
  return apply1(CONCAT, xs, { axis: ax });
}

const SPLIT: OpDef<{ axis: number; sizes: readonly number[] }> = {
  name: 'split',
  infer: ([x], a) =>
    a.sizes.map((s) => {
      const shape = [...x!.shape];
      shape[a.axis] = s;
      return { dtype: x!.dtype, shape };
    }),
  emit(e, n) {
    e.node(
      'Split',
      [e.name(n.inputs[0]!), e.constI64(n.attrs.sizes)],
      n.outputs.map((v) => e.name(v)),
      { axis: { i: n.attrs.axis } },
    );
  },
  vjp: (n, dOuts) => {
    const parts = n.outputs.map((o, i) => dOuts[i] ?? full(o.graph, o.shape, 0, o.dtype));
    return [concat(parts, n.attrs.axis)];
  },
};

/** Split `axis` into pieces of the given static sizes. */
export function split(x: Var, axis: number, sizes: readonly number[]): Var[] {
  const ax = normAxis('split', axis, x.rank);
  const total = sizes.reduce((p, q) => p + q, 0);
  if (!dimEq(total, x.shape[ax]!))
    throw new ShapeError(
      'split',
      `sizes [${sizes}] do not add up to dim ${x.shape[ax]} of ${fmtShape(x.shape)}`,
    );
  return x.graph.apply(SPLIT, [x], { axis: ax, sizes });
}

const UNSQUEEZE: OpDef<{ axes: readonly number[] }> = {
  name: 'unsqueeze',
  infer: ([x], a) => {
    const shape: Dim[] = [];
    let j = 0;
    for (let i = 0; i < x!.rank + a.axes.length; i++)
      shape.push(a.axes.includes(i) ? 1 : x!.shape[j++]!);
    return [{ dtype: x!.dtype, shape }];
  },
  emit(e, n) {
    e.node('Unsqueeze', [e.name(n.inputs[0]!), e.constI64(n.attrs.axes)], [e.name(n.outputs[0]!)]);
  },
  vjp: (n, [dy]) => [squeeze(dy!, n.attrs.axes)],
};

/** Insert size-1 dims at `axes` (positions in the output). */
export function unsqueeze(x: Var, axes: readonly number[]): Var {
  const r = x.rank + axes.length;
  const ax = [...new Set(axes.map((a) => normAxis('unsqueeze', a, r)))].sort((p, q) => p - q);
  return apply1(UNSQUEEZE, [x], { axes: ax });
}

const SQUEEZE: OpDef<{ axes: readonly number[] }> = {
  name: 'squeeze',
  infer: ([x], a) => [{ dtype: x!.dtype, shape: x!.shape.filter((_, i) => !a.axes.includes(i)) }],
  emit(e, n) {
    e.node('Squeeze', [e.name(n.inputs[0]!), e.constI64(n.attrs.axes)], [e.name(n.outputs[0]!)]);
  },
  vjp: (n, [dy]) => [unsqueeze(dy!, n.attrs.axes)],
};

/** Remove size-1 dims at `axes`. */
export function squeeze(x: Var, axes: readonly number[]): Var {
  const ax = [...new Set(axes.map((a) => normAxis('squeeze', a, x.rank)))].sort((p, q) => p - q);
  for (const a of ax)
    if (x.shape[a] !== 1)
      throw new ShapeError('squeeze', `dim ${a} of ${fmtShape(x.shape)} is not 1`);
  if (ax.length === 0) return x;
  return apply1(SQUEEZE, [x], { axes: ax });
}

const EXPAND: OpDef<{ dims: Shape }> = {
  name: 'expand',
  infer: ([x], a) => [{ dtype: x!.dtype, shape: a.dims }],
  emit(e, n) {
    const x = n.inputs[0]!;
    e.node(
      'Expand',
      [e.name(x), e.shapeTensor(n.attrs.dims, { bcastFrom: x.shape })],
      [e.name(n.outputs[0]!)],
    );
  },
  vjp: (n, [dy]) => [sumTo(dy!, n.inputs[0]!.shape)],
};

/** Broadcast `x` to exactly `dims`. */
export function expand(x: Var, dims: readonly Dim[]): Var {
  const out = broadcast('expand', x.shape, dims);
  if (!shapeEq(out, dims))
    throw new ShapeError('expand', `cannot expand ${fmtShape(x.shape)} to ${fmtShape(dims)}`);
  if (shapeEq(out, x.shape)) return x;
  return apply1(EXPAND, [x], { dims: out });
}

/** A tensor of `dims` filled with `value` (materialised at run time, not stored). */
export function full(
  g: Var['graph'],
  dims: readonly Dim[],
  value: number,
  dtype: DType = 'float32',
): Var {
  const s = g.scalar(value, dtype);
  if (dims.length === 0) return s;
  return apply1(EXPAND, [s], { dims: dims.map(canonDim) });
}

const RANGE: OpDef<{ n: Dim; dtype: DType }> = {
  name: 'arange',
  infer: (_xs, a) => [{ dtype: a.dtype, shape: [a.n] }],
  emit(e, n) {
    const { n: len, dtype } = n.attrs;
    let limit: string;
    if (typeof len === 'number') limit = e.constScalar(len, dtype);
    else {
      const l64 = e.tmp('len');
      e.node('Reshape', [e.shapeTensor([len]), e.constI64([])], [l64]);
      if (dtype === 'int64') limit = l64;
      else {
        limit = e.tmp('lim');
        const codes = { float32: 1, uint32: 12, int32: 6, int64: 7, bool: 9, float64: 11 };
        e.node('Cast', [l64], [limit], { to: { i: codes[dtype] } });
      }
    }
    e.node(
      'Range',
      [e.constScalar(0, dtype), limit, e.constScalar(1, dtype)],
      [e.name(n.outputs[0]!)],
    );
  },
};

/** [0, 1, ..., n-1] as a 1-D tensor (n may be symbolic). */
export function arange(g: Var['graph'], n: Dim, dtype: DType = 'int64'): Var {
  return g.apply(RANGE, [], { n: canonDim(n), dtype })[0] as Var;
}
