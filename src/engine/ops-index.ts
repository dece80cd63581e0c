// Indexing op table entries: Gather (embedding lookup), GatherElements, GatherND and the
// scatter ops that serve as their gradients. ORT's inference build has no GatherGrad. The
// embedding gradient is a one-hot matmul (deterministic), ScatterND(add) for other gathers.
import { ShapeError } from '../util/errors.ts';
import type { OpDef, Var } from './graph.ts';
import { apply1, needIndex, sameDtype } from './ops-core.ts';
import { cast, equal } from './ops-math.ts';
import { matmul } from './ops-matmul.ts';
import { arange, full, reshape, unsqueeze } from './ops-shape.ts';
import { dimEq, fmtShape, normAxis, shapeEq } from './shape.ts';

const GATHER: OpDef<{ axis: number }> = {
  name: 'gather',
  infer: ([data, idx], a) => {
    needIndex('gather', idx!);
    const s = data!.shape;
    return [
      { dtype: data!.dtype, shape: [...s.slice(0, a.axis), ...idx!.shape, ...s.slice(a.axis + 1)] },
    ];
  },
  emit(e, n) {
    e.node(
      'Gather',
      n.inputs.map((v) => e.name(v)),
      [e.name(n.outputs[0]!)],
      {
        axis: { i: n.attrs.axis },
      },
    );
  },
  vjp: (n, [dy], need) => {
    if (!need[0]) return [undefined, undefined];
    const [data, idx] = n.inputs as [Var, Var];
    if (n.attrs.axis !== 0)
      throw new ShapeError('gather', 'gradient is only implemented for axis 0 (embedding lookup)');
    if (data.rank === 2) {
      // Embedding rows hit several times must accumulate. ORT's ScatterND(add) does that with a
      // thread race on repeated rows (run-to-run differences with 2 threads), so use the
      // one-hot product instead: dW = onehot(ids)ᵀ · dY, [V, N]·[N, D], deterministic GEMM.
      const [v, d] = data.shape as [number, number];
      const oh = cast(
        equal(unsqueeze(reshape(idx, [-1]), [1]), arange(data.graph, v, idx.dtype)),
        data.dtype,
      ); // [N, V]
      return [matmul(oh, reshape(dy!, [-1, d]), { transA: true }), undefined];
    }
    // Rows hit several times accumulate: ScatterND with reduction='add'.
    const zeros = full(data.graph, data.shape, 0, data.dtype);
    return [scatterND(zeros, unsqueeze(idx, [-1]), dy!, 'add'), undefined];
  },
};

/** Take slices of `data` along `axis` at `indices` (Gather; an embedding lookup at axis 0). */
export function gather(data: Var, indices: Var, axis = 0): Var {
  return apply1(GATHER, [data, indices], { axis: normAxis('gather', axis, data.rank) });
}

const GATHER_ELEMENTS: OpDef<{ axis: number }> = {
  name: 'gather_elements',
  infer: ([data, idx], a) => {
    needIndex('gather_elements', idx!);
    if (idx!.rank !== data!.rank)
      throw new ShapeError(
        'gather_elements',
        `rank differs: data ${fmtShape(data!.shape)}, indices ${fmtShape(idx!.shape)}`,
      );
    idx!.shape.forEach((d, i) => {
      if (i !== a.axis && !dimEq(d, data!.shape[i]!) && d !== 1)
        throw new ShapeError(
          'gather_elements',
          `data ${fmtShape(data!.shape)} vs indices ${fmtShape(idx!.shape)}`,
        );
    });
    return [{ dtype: data!.dtype, shape: idx!.shape }];
  },
  emit(e, n) {
    e.node(
      'GatherElements',
      n.inputs.map((v) => e.name(v)),
      [e.name(n.outputs[0]!)],
      {
        axis: { i: n.attrs.axis },
      },
    );
  },
  vjp: (n, [dy], need) => {
    if (!need[0]) return [undefined, undefined];
    const [data, idx] = n.inputs as [Var, Var];
    const zeros = full(data.graph, data.shape, 0, data.dtype);
    return [scatterElements(zeros, idx, dy!, n.attrs.axis, 'add'), undefined];
  },
};

/** out[i][j] = data[i][indices[i][j]] along `axis` (GatherElements). */
export function gatherElements(data: Var, indices: Var, axis: number): Var {
  return apply1(GATHER_ELEMENTS, [data, indices], {
    axis: normAxis('gather_elements', axis, data.rank),
  });
}

/** Scatter reduction: 'none' overwrites, 'add' accumulates. */
export type ScatterReduction = 'none' | 'add';

const SCATTER_ELEMENTS: OpDef<{ axis: number; reduction: ScatterReduction }> = {
  name: 'scatter_elements',
  infer: ([data, idx, upd]) => {
    needIndex('scatter_elements', idx!);
    sameDtype('scatter_elements', [data!, upd!]);
    if (!shapeEq(idx!.shape, upd!.shape))
      throw new ShapeError(
        'scatter_elements',
        `indices ${fmtShape(idx!.shape)} vs updates ${fmtShape(upd!.shape)}`,
      );
    return [{ dtype: data!.dtype, shape: data!.shape }];
  },
  emit(e, n) {
    e.node(
      'ScatterElements',
      n.inputs.map((v) => e.name(v)),
      [e.name(n.outputs[0]!)],
      {
        axis: { i: n.attrs.axis },
        reduction: { s: n.attrs.reduction },
      },
    );
  },
  vjp: (n, [dy], need) => {
    const [, idx, upd] = n.inputs as [Var, Var, Var];
    const { axis, reduction } = n.attrs;
    let dData: Var | undefined;
    if (need[0])
      dData =
        reduction === 'add'
          ? dy!
          : scatterElements(dy!, idx, full(upd.graph, upd.shape, 0, upd.dtype), axis, 'none');
    return [dData, undefined, need[2] ? gatherElements(dy!, idx, axis) : undefined];
  },
};

/** Write (or add) `updates` into a copy of `data` at `indices` along `axis`. */
export function scatterElements(
  data: Var,
  indices: Var,
  updates: Var,
  axis: number,
  reduction: ScatterReduction = 'none',
): Var {
  return apply1(SCATTER_ELEMENTS, [data, indices, updates], {
    axis: normAxis('scatter_elements', axis, data.rank),
    reduction,
  });
}

const SCATTER_ND: OpDef<{ reduction: ScatterReduction }> = {
  name: 'scatter_nd',
  infer: ([data, idx, upd]) => {
    needIndex('scatter_nd', idx!);
    sameDtype('scatter_nd', [data!, upd!]);
    const k = idx!.shape[idx!.rank - 1];
    if (typeof k !== 'number')
      throw new ShapeError(
        'scatter_nd',
        `last dim of indices must be static, got ${fmtShape(idx!.shape)}`,
      );
    const want = [...idx!.shape.slice(0, -1), ...data!.shape.slice(k)];
    if (!shapeEq(want, upd!.shape))
      throw new ShapeError(
        'scatter_nd',
        `updates ${fmtShape(upd!.shape)}, expected ${fmtShape(want)}`,
      );
    return [{ dtype: data!.dtype, shape: data!.shape }];
  },
  emit(e, n) {
    e.node(
      'ScatterND',
      n.inputs.map((v) => e.name(v)),
      [e.name(n.outputs[0]!)],
      {
        reduction: { s: n.attrs.reduction },
      },
    );
  },
  vjp: (n, [dy], need) => {
    const [, idx, upd] = n.inputs as [Var, Var, Var];
    let dData: Var | undefined;
    if (need[0])
      dData =
        n.attrs.reduction === 'add'
          ? dy!
          : scatterND(dy!, idx, full(upd.graph, upd.shape, 0, upd.dtype), 'none');
    return [dData, undefined, need[2] ? gatherND(dy!, idx) : undefined];
  },
};

/** Write (or add) slices `updates` into a copy of `data` at index tuples `indices` (ScatterND). */
export function scatterND(
  data: Var,
  indices: Var,
  updates: Var,
  reduction: ScatterReduction = 'none',
): Var {
  return apply1(SCATTER_ND, [data, indices, updates], { reduction });
}

const GATHER_ND: OpDef<Record<string, never>> = {
  name: 'gather_nd',
  infer: ([data, idx]) => {
    needIndex('gather_nd', idx!);
    const k = idx!.shape[idx!.rank - 1];
    if (typeof k !== 'number')
      throw new ShapeError(
        'gather_nd',
        `last dim of indices must be static, got ${fmtShape(idx!.shape)}`,
      );
    return [{ dtype: data!.dtype, shape: [...idx!.shape.slice(0, -1), ...data!.shape.slice(k)] }];
  },
  emit(e, n) {
    e.node(
      'GatherND',
      n.inputs.map((v) => e.name(v)),
      [e.name(n.outputs[0]!)],
    );
  },
  vjp: (n, [dy], need) => {
    if (!need[0]) return [undefined, undefined];
    const [data, idx] = n.inputs as [Var, Var];
    const zeros = full(data.graph, data.shape, 0, data.dtype);
    return [scatterND(zeros, idx, dy!, 'add'), undefined];
  },
};

/** Gather slices of `data` at index tuples `indices` (GatherND, batch_dims 0). */
export function gatherND(data: Var, indices: Var): Var {
  return apply1(GATHER_ND, [data, indices], {});
}
