// Indexing op table entries: Gather (embedding lookup), GatherElements, GatherND and the
// scatter ops that serve as their gradients. ORT's inference build has no GatherGrad. The
// embedding gradient is a one-hot matmul over the batch's distinct ids (deterministic),
// ScatterND(add) for other gathers.
import { ShapeError } from '../util/errors.ts';
import { ONNX_DTYPE } from './dtype.ts';
import type { OpDef, Var } from './graph.ts';
import { apply1, needIndex, sameDtype } from './ops-core.ts';
import { full, unsqueeze } from './ops-shape.ts';
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
    if (data.rank === 2 && typeof data.shape[0] === 'number' && typeof data.shape[1] === 'number')
      return [
        data.graph.scope('embedding_grad', () =>
          apply1(EMBEDDING_GRAD, [idx, dy!], { rows: data.shape[0] as number }),
        ),
        undefined,
      ];
    // Rows hit several times accumulate: ScatterND with reduction='add'.
    const zeros = full(data.graph, data.shape, 0, data.dtype);
    return [scatterND(zeros, unsqueeze(idx, [-1]), dy!, 'add'), undefined];
  },
};

// The gradient of an embedding lookup, dW [V, D] from ids [...] and dY [..., D]: rows hit
// several times must accumulate, and ORT's ScatterND(add) does that with a thread race on
// repeated rows (run-to-run differences with 2 threads). So the sum runs as a GEMM over the
// batch's distinct ids only: Unique gives the sorted distinct ids u [U] and each token's
// position in u, the one-hot of those positions [U, N] times dY gives one summed row per
// distinct id, [U, N]·[N, D], and ScatterND writes those rows (each once, so no race) into
// zeros. That is at most 2·N²·D FLOPs instead of 2·V·N·D for a one-hot over the vocabulary.
const EMBEDDING_GRAD: OpDef<{ rows: number }> = {
  name: 'embedding_grad',
  infer: ([, dy], a) => [{ dtype: dy!.dtype, shape: [a.rows, dy!.shape[dy!.rank - 1]!] }],
  emit(e, n) {
    const [ids, dy] = n.inputs as [Var, Var];
    const [v, d] = [n.attrs.rows, dy.shape[dy.rank - 1] as number];
    const t = (hint: string) => e.tmp(`embedding_grad/${hint}`);
    const flat = t('ids');
    e.node('Reshape', [e.name(ids), e.constI64([-1])], [flat]);
    const [uniq, inverse] = [t('unique'), t('inverse')];
    e.node('Unique', [flat], [uniq, '', inverse], { sorted: { i: 1 } });
    const [count, limit, range] = [t('count'), t('limit'), t('range')];
    e.node('Shape', [uniq], [count]);
    e.node('Squeeze', [count, e.constI64([0])], [limit]);
    e.node('Range', [e.constI64([0], true), limit, e.constI64([1], true)], [range]); // [U]
    // The one-hot is built transposed, [U, N], so the sum is a plain GEMM (no transposed A).
    const [column, row, hit, onehot] = [t('column'), t('row'), t('hit'), t('onehot')];
    e.node('Unsqueeze', [range, e.constI64([1])], [column]); // [U, 1]
    e.node('Unsqueeze', [inverse, e.constI64([0])], [row]); // [1, N]
    e.node('Equal', [column, row], [hit]); // [U, N]
    e.node('Cast', [hit], [onehot], { to: { i: ONNX_DTYPE[dy.dtype] } });
    const [rows, summed] = [t('rows'), t('summed')];
    e.node('Reshape', [e.name(dy), e.constI64([-1, d])], [rows]); // [N, D]
    e.node('MatMul', [onehot, rows], [summed]); // [U, D]
    const [where, zeros] = [t('where'), t('zeros')];
    e.node('Unsqueeze', [uniq, e.constI64([1])], [where]); // [U, 1]
    e.node('Expand', [e.constScalar(0, dy.dtype), e.constI64([v, d])], [zeros]);
    e.node('ScatterND', [zeros, where, summed], [e.name(n.outputs[0]!)]);
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
