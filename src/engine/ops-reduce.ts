// Reduction op table entries (ReduceSum / ReduceSumSquare / ReduceMean / ReduceMax), Softmax
// and LogSoftmax, and `dimValue`, which turns a (possibly symbolic) dim into a runtime scalar.
// Gradients broadcast the upstream gradient back over the reduced axes.
import type { DType } from './dtype.ts';
import type { OpDef, Var } from './graph.ts';
import { apply1, keepShape, needFloat } from './ops-core.ts';
import { cast, div, equal, mul, sub } from './ops-math.ts';
import { expand, reshape } from './ops-shape.ts';
import type { Dim } from './shape.ts';
import { normAxis, numel } from './shape.ts';

interface ReduceAttrs {
  axes: readonly number[];
  keepdims: boolean;
}

function reduceOp(name: string, onnx: string, vjp: OpDef<ReduceAttrs>['vjp']): OpDef<ReduceAttrs> {
  return {
    name,
    infer: ([x], a) => {
      const shape = a.keepdims
        ? keepShape(x!.shape, a.axes)
        : x!.shape.filter((_, i) => !a.axes.includes(i));
      return [{ dtype: x!.dtype, shape }];
    },
    emit(e, n) {
      e.node(onnx, [e.name(n.inputs[0]!), e.constI64(n.attrs.axes)], [e.name(n.outputs[0]!)], {
        keepdims: { i: n.attrs.keepdims ? 1 : 0 },
      });
    },
    vjp,
  };
}

/** Upstream gradient of a reduction, reshaped to keepdims form and broadcast to `x`. */
function spread(x: Var, dy: Var, a: ReduceAttrs): Var {
  const kept = a.keepdims ? dy : reshape(dy, keepShape(x.shape, a.axes));
  return expand(kept, x.shape);
}

const REDUCE_SUM = reduceOp('reduce_sum', 'ReduceSum', (n, [dy]) => [
  spread(n.inputs[0]!, dy!, n.attrs),
]);
const REDUCE_MEAN = reduceOp('reduce_mean', 'ReduceMean', (n, [dy]) => {
  const x = n.inputs[0]!;
  const count = n.attrs.axes.reduce<Dim>((acc, ax) => numel([acc, x.shape[ax]!]), 1);
  return [div(spread(x, dy!, n.attrs), dimValue(x.graph, count, x.dtype))];
});
// Σx² in one pass with no x² tensor (the gradient norm of a training step); d/dx = 2x·dy.
const REDUCE_SUM_SQUARE = reduceOp('reduce_sum_square', 'ReduceSumSquare', (n, [dy]) => {
  const x = n.inputs[0]!;
  return [mul(mul(x, 2), spread(x, dy!, n.attrs))];
});
const REDUCE_MAX = reduceOp('reduce_max', 'ReduceMax', (n, [dy]) => {
  // Ties share the gradient equally (torch.amax's rule).
  const x = n.inputs[0]!;
  const a = n.attrs;
  const yk = a.keepdims ? n.outputs[0]! : reshape(n.outputs[0]!, keepShape(x.shape, a.axes));
  const hit = cast(equal(x, yk), x.dtype);
  const share = div(spread(x, dy!, a), reduceSum(hit, a.axes, true));
  return [mul(hit, share)];
});

function axesOf(x: Var, axes: readonly number[] | undefined, op: string): number[] {
  const all = axes ?? x.shape.map((_, i) => i);
  return [...new Set(all.map((ax) => normAxis(op, ax, x.rank)))].sort((p, q) => p - q);
}

/** Sum over `axes` (all when omitted). */
export function reduceSum(x: Var, axes?: readonly number[], keepdims = false): Var {
  return apply1(REDUCE_SUM, [x], { axes: axesOf(x, axes, 'reduce_sum'), keepdims });
}
/** Mean over `axes` (all when omitted). */
export function reduceMean(x: Var, axes?: readonly number[], keepdims = false): Var {
  needFloat('reduce_mean', x);
  return apply1(REDUCE_MEAN, [x], { axes: axesOf(x, axes, 'reduce_mean'), keepdims });
}
/** Sum of squares over `axes` (all when omitted). */
export function reduceSumSquare(x: Var, axes?: readonly number[], keepdims = false): Var {
  needFloat('reduce_sum_square', x);
  return apply1(REDUCE_SUM_SQUARE, [x], {
    axes: axesOf(x, axes, 'reduce_sum_square'),
    keepdims,
  });
}
/** Max over `axes` (all when omitted). */
export function reduceMax(x: Var, axes?: readonly number[], keepdims = false): Var {
  return apply1(REDUCE_MAX, [x], { axes: axesOf(x, axes, 'reduce_max'), keepdims });
}

const ARG_MAX: OpDef<{ axis: number; keepdims: boolean }> = {
  name: 'arg_max',
  infer: ([x], a) => {
    const shape = a.keepdims
      ? x!.shape.map((d, i) => (i === a.axis ? 1 : d))
      : x!.shape.filter((_, i) => i !== a.axis);
    return [{ dtype: 'int64', shape }];
  },
  emit(e, n) {
    e.node('ArgMax', [e.name(n.inputs[0]!)], [e.name(n.outputs[0]!)], {
      axis: { i: n.attrs.axis },
      keepdims: { i: n.attrs.keepdims ? 1 : 0 },
      select_last_index: { i: 0 },
    });
  },
  // An index has no gradient.
  vjp: () => [undefined],
};

/** Index of the maximum along `axis` (first on ties); int64, not differentiable. */
export function argMax(x: Var, axis = -1, keepdims = false): Var {
  return apply1(ARG_MAX, [x], { axis: normAxis('arg_max', axis, x.rank), keepdims });
}

const SOFTMAX: OpDef<{ axis: number }> = {
  name: 'softmax',
  infer: ([x]) => {
    needFloat('softmax', x!);
    return [{ dtype: x!.dtype, shape: x!.shape }];
  },
  emit(e, n) {
    e.node('Softmax', [e.name(n.inputs[0]!)], [e.name(n.outputs[0]!)], {
      axis: { i: n.attrs.axis },
    });
  },
  // dx = y ⊙ (dy − Σ dy⊙y)
  vjp: (n, [dy]) => {
    const y = n.outputs[0]!;
    return [mul(y, sub(dy!, reduceSum(mul(dy!, y), [n.attrs.axis], true)))];
  },
};

const LOG_SOFTMAX: OpDef<{ axis: number }> = {
  name: 'log_softmax',
  infer: ([x]) => {
    needFloat('log_softmax', x!);
    return [{ dtype: x!.dtype, shape: x!.shape }];
  },
  emit(e, n) {
    e.node('LogSoftmax', [e.name(n.inputs[0]!)], [e.name(n.outputs[0]!)], {
      axis: { i: n.attrs.axis },
    });
  },
  // dx = dy − softmax ⊙ Σ dy; softmax is recomputed from x (ORT's Softmax is far faster than Exp)
  vjp: (n, [dy]) => {
    const p = softmax(n.inputs[0]!, n.attrs.axis);
    return [sub(dy!, mul(p, reduceSum(dy!, [n.attrs.axis], true)))];
  },
};

/** Softmax along `axis`. */
export function softmax(x: Var, axis = -1): Var {
  return apply1(SOFTMAX, [x], { axis: normAxis('softmax', axis, x.rank) });
}
/** Log-softmax along `axis`. */
export function logSoftmax(x: Var, axis = -1): Var {
  return apply1(LOG_SOFTMAX, [x], { axis: normAxis('log_softmax', axis, x.rank) });
}

const DIM_VALUE: OpDef<{ dim: Dim; dtype: DType }> = {
  name: 'dim_value',
  infer: (_xs, a) => [{ dtype: a.dtype, shape: [] }],
  emit(e, n) {
    const { dim, dtype } = n.attrs;
    const out = e.name(n.outputs[0]!);
    if (typeof dim === 'number') {
      e.node('Identity', [e.constScalar(dim, dtype)], [out]);
      return;
    }
    const codes = { float32: 1, uint32: 12, int32: 6, int64: 7, bool: 9, float64: 11 };
    const v = e.tmp('dim');
    e.node('Reshape', [e.shapeTensor([dim]), e.constI64([])], [v]);
    e.node('Cast', [v], [out], { to: { i: codes[dtype] } });
  },
};

/** A 0-D tensor holding the runtime value of `dim` (a number or symbolic dim such as 'B*T'). */
export function dimValue(g: Var['graph'], dim: Dim, dtype: DType = 'int64'): Var {
  if (typeof dim === 'number') return g.scalar(dim, dtype);
  return g.apply(DIM_VALUE, [], { dim, dtype })[0] as Var;
}
