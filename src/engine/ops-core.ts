// Helpers shared by the op table files: defining single-node ops, promoting numbers to
// scalar constants, dtype checks, and `sumTo`, the broadcast-undoing reduction every
// elementwise gradient ends with. The op entries themselves live in ops-*.ts.
import { ShapeError } from '../util/errors.ts';
import type { DType } from './dtype.ts';
import { isFloat } from './dtype.ts';
import type { Attr, Emitter, Node, OpDef, OutSpec, Var } from './graph.ts';
import { reduceSum } from './ops-reduce.ts';
import { squeeze } from './ops-shape.ts';
import type { Shape } from './shape.ts';
import { dimEq, fmtShape, shapeEq } from './shape.ts';

/** A number becomes a scalar constant with the dtype of `like`. */
export function lift(like: Var, y: Var | number): Var {
  return typeof y === 'number' ? like.graph.scalar(y, like.dtype) : y;
}

/** Apply `op` and return its single output. */
export function apply1<A>(op: OpDef<A>, inputs: readonly Var[], attrs: A): Var {
  const g = inputs[0]?.graph;
  if (!g) throw new ShapeError(op.name, 'needs at least one input');
  return g.apply(op, inputs, attrs)[0] as Var;
}

/** Throw unless all inputs share one dtype; return it. */
export function sameDtype(op: string, xs: readonly Var[]): DType {
  const d = (xs[0] as Var).dtype;
  for (const x of xs)
    if (x.dtype !== d)
      throw new ShapeError(op, `dtype mismatch: ${xs.map((v) => v.toString()).join(' vs ')}`, {
        hint: 'insert a cast',
      });
  return d;
}

/** Throw unless `x` is float. */
export function needFloat(op: string, x: Var): void {
  if (!isFloat(x.dtype)) throw new ShapeError(op, `expects a float tensor, got ${x}`);
}

/** Throw unless `x` has an integer index dtype. */
export function needIndex(op: string, x: Var): void {
  if (x.dtype !== 'int64' && x.dtype !== 'int32')
    throw new ShapeError(op, `indices must be int64 or int32, got ${x}`);
}

/**
 * An op that emits exactly one ONNX node with the same inputs and outputs, optional static
 * attributes and domain.
 */
export function simpleOp<A>(spec: {
  name: string;
  onnx: string;
  domain?: string;
  attrs?: (a: A, node: Node<A>) => Record<string, Attr>;
  infer: (xs: readonly Var[], a: A) => OutSpec[];
  vjp?: OpDef<A>['vjp'];
}): OpDef<A> {
  const def: OpDef<A> = {
    name: spec.name,
    infer: spec.infer,
    emit(e: Emitter, node: Node<A>) {
      e.node(
        spec.onnx,
        node.inputs.map((v) => e.name(v)),
        node.outputs.map((v) => e.name(v)),
        spec.attrs ? spec.attrs(node.attrs, node) : undefined,
        spec.domain,
      );
    },
  };
  if (spec.vjp) def.vjp = spec.vjp;
  return def;
}

/**
 * Reduce a broadcast gradient back to `shape`: sum over leading extra axes and over axes
 * where `shape` has size 1 but the gradient does not.
 */
export function sumTo(dy: Var, shape: Shape): Var {
  if (shapeEq(dy.shape, shape)) return dy;
  const lead = dy.rank - shape.length;
  if (lead < 0)
    throw new ShapeError('sumTo', `cannot reduce ${fmtShape(dy.shape)} to ${fmtShape(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < dy.rank; i++) {
    if (i < lead) axes.push(i);
    else if (shape[i - lead] === 1 && dy.shape[i] !== 1) axes.push(i);
    else if (!dimEq(shape[i - lead] as string | number, dy.shape[i] as string | number))
      throw new ShapeError('sumTo', `cannot reduce ${fmtShape(dy.shape)} to ${fmtShape(shape)}`);
  }
  let r = axes.length > 0 ? reduceSum(dy, axes, true) : dy;
  if (lead > 0)
    r = squeeze(
      r,
      Array.from({ length: lead }, (_, i) => i),
    );
  return r;
}

/** 1 for each axis of `a`, with `keep` axes keeping their size (for keepdims reshapes). */
export function keepShape(shape: Shape, axes: readonly number[]): Shape {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}
