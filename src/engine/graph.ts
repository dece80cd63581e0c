// The graph builder: symbolic values (Var), op applications (Node), regions (composites with a
// hand-written backward, recomputed checkpoint blocks) and the Graph that owns them. Ops live in
// ops*.ts, gradients in autodiff.ts, serialisation in onnx.ts; this file only records.
import { ShapeError } from '../util/errors.ts';
import type { DType, TypedArray } from './dtype.ts';
import { dtypeOfArray, isFloat, toTyped } from './dtype.ts';
import * as O from './ops.ts';
import type { Dim, Shape } from './shape.ts';
import { canonDim, fmtShape, numel } from './shape.ts';

/** An ONNX attribute value: int, float, string, ints, floats. */
export type Attr =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: readonly number[] }
  | { floats: readonly number[] };

/** Output dtype and shape computed by an op's shape inference. */
export interface OutSpec {
  dtype: DType;
  shape: Shape;
}

/** Receives ONNX nodes while a graph is serialised (implemented in onnx.ts). */
export interface Emitter {
  /** ONNX value name of a Var. */
  name(v: Var): string;
  /** Append one ONNX node. */
  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attrs?: Readonly<Record<string, Attr>>,
    domain?: string,
  ): void;
  /** A fresh temporary value name. */
  tmp(hint: string): string;
  /** Name of a deduplicated 1-D int64 initializer holding `values`. */
  constI64(values: readonly number[], scalar?: boolean): string;
  /** Name of a 0-D initializer of dtype `dtype`. */
  constScalar(value: number, dtype: DType): string;
  /**
   * An int64 shape tensor for `dims`. Symbolic dims are read at run time from the graph input
   * that declares them. With `copyFrom`, a dim equal to the source dim at the same index is
   * written as 0 (ONNX Reshape's "copy" rule); with `bcastFrom` it is written as 1 (Expand).
   */
  shapeTensor(dims: Shape, opts?: { copyFrom?: Shape; bcastFrom?: Shape }): string;
}

/** Vector-Jacobian product: gradients of the inputs given gradients of the outputs. */
export type VjpFn = (
  dOuts: readonly (Var | undefined)[],
  needs: readonly boolean[],
) => (Var | undefined)[];

/** One entry of the op table: shape inference, ONNX emission and (optionally) the gradient. */
export interface OpDef<A = Record<string, unknown>> {
  /** Table key, also used to name values in dumps. */
  readonly name: string;
  /** Output specs for these inputs; throws ShapeError on a mismatch. */
  infer(inputs: readonly Var[], attrs: A): OutSpec[];
  /** Write the ONNX node(s) computing `node.outputs` from `node.inputs`. */
  emit(e: Emitter, node: Node<A>): void;
  /** Gradient rule; absent for non-differentiable ops (comparisons, shapes, indices). */
  vjp?(
    node: Node<A>,
    dOuts: readonly (Var | undefined)[],
    needs: readonly boolean[],
  ): (Var | undefined)[];
}

/** How a Var came to be. */
export type VarKind = 'input' | 'param' | 'constant' | 'op';

/** A region of nodes treated as one unit by autodiff. */
export interface Region {
  readonly id: number;
  /** composite: hand-written vjp; checkpoint: recomputed in backward; scope: naming only. */
  readonly kind: 'composite' | 'checkpoint' | 'scope';
  readonly name: string;
  readonly parent: Region | undefined;
  inputs: Var[];
  outputs: Var[];
  /** Composite backward (closure over the forward's saved values). */
  vjp?: VjpFn;
  /** Checkpoint forward, re-run in the backward pass. */
  rebuild?: (...xs: Var[]) => Var[];
}

/** An application of an op table entry. */
export class Node<A = Record<string, unknown>> {
  constructor(
    readonly id: number,
    readonly op: OpDef<A>,
    readonly inputs: readonly Var[],
    readonly attrs: A,
    readonly region: Region | undefined,
    public outputs: Var[] = [],
  ) {}
}

/**
 * A symbolic tensor in a Graph: dtype, shape and where it comes from. Methods build ops
 * (`x.matmul(w).add(b)`), numbers are promoted to scalar constants of the same dtype.
 */
export class Var {
  /** Explicit value name (inputs, params, outputs); op results are named at emission. */
  name: string | undefined;
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly kind: VarKind,
    readonly dtype: DType,
    readonly shape: Shape,
    readonly node: Node<unknown> | undefined,
    readonly index: number,
    name?: string,
    /** True for params that must not receive gradients. */
    readonly frozen = false,
    /** Constant payload (kind 'constant'). */
    readonly data?: TypedArray,
  ) {
    this.name = name;
  }

  /** Rank (number of dims). */
  get rank(): number {
    return this.shape.length;
  }

  /** Human-readable description for error messages. */
  toString(): string {
    return `${this.name ?? `%${this.id}`}:${this.dtype}${fmtShape(this.shape)}`;
  }

  add(y: Var | number): Var {
    return O.add(this, y);
  }
  sub(y: Var | number): Var {
    return O.sub(this, y);
  }
  mul(y: Var | number): Var {
    return O.mul(this, y);
  }
  div(y: Var | number): Var {
    return O.div(this, y);
  }
  pow(y: Var | number): Var {
    return O.pow(this, y);
  }
  neg(): Var {
    return O.neg(this);
  }
  exp(): Var {
    return O.exp(this);
  }
  log(): Var {
    return O.log(this);
  }
  sqrt(): Var {
    return O.sqrt(this);
  }
  reciprocal(): Var {
    return O.reciprocal(this);
  }
  sigmoid(): Var {
    return O.sigmoid(this);
  }
  tanh(): Var {
    return O.tanh(this);
  }
  relu(): Var {
    return O.relu(this);
  }
  abs(): Var {
    return O.abs(this);
  }
  /** Matrix product over the last two dims; batch dims broadcast. */
  matmul(w: Var, opts: O.MatMulOpts = {}): Var {
    return O.matmul(this, w, opts);
  }
  reshape(dims: readonly Dim[]): Var {
    return O.reshape(this, dims);
  }
  transpose(perm: readonly number[]): Var {
    return O.transpose(this, perm);
  }
  /** Slice `[start, end)` along `axis` (negative indices count from the end). */
  slice(axis: number, start: number, end = Number.POSITIVE_INFINITY): Var {
    return O.slice(this, axis, start, end);
  }
  unsqueeze(axes: readonly number[]): Var {
    return O.unsqueeze(this, axes);
  }
  squeeze(axes: readonly number[]): Var {
    return O.squeeze(this, axes);
  }
  expand(dims: readonly Dim[]): Var {
    return O.expand(this, dims);
  }
  /** Sum over `axes` (all when omitted). */
  sum(axes?: readonly number[], keepdims = false): Var {
    return O.reduceSum(this, axes, keepdims);
  }
  /** Mean over `axes` (all when omitted). */
  mean(axes?: readonly number[], keepdims = false): Var {
    return O.reduceMean(this, axes, keepdims);
  }
  /** Max over `axes` (all when omitted). */
  max(axes?: readonly number[], keepdims = false): Var {
    return O.reduceMax(this, axes, keepdims);
  }
  softmax(axis = -1): Var {
    return O.softmax(this, axis);
  }
  logSoftmax(axis = -1): Var {
    return O.logSoftmax(this, axis);
  }
  cast(dtype: DType): Var {
    return O.cast(this, dtype);
  }
}

/** Options for a graph parameter. */
export interface ParamOpts {
  /** @default 'float32' */
  dtype?: DType;
  /** A frozen parameter is fed like any other but never gets a gradient. @default false */
  frozen?: boolean;
}

/**
 * A computation graph under construction. Inputs and params are ONNX graph inputs, constants
 * become initializers, `output` names the values the session returns.
 */
export class Graph {
  readonly name: string;
  readonly nodes: Node<unknown>[] = [];
  readonly inputs: Var[] = [];
  readonly outputs = new Map<string, Var>();
  private nextId = 0;
  private regionStack: Region[] = [];
  private scalars = new Map<string, Var>();
  private names = new Set<string>();

  constructor(opts: { name?: string } = {}) {
    this.name = opts.name ?? 'graph';
  }

  /** The innermost open region (composite, checkpoint or scope), if any. */
  get currentRegion(): Region | undefined {
    return this.regionStack[this.regionStack.length - 1];
  }

  private claim(name: string, what: string): void {
    if (this.names.has(name))
      throw new ShapeError(what, `duplicate name '${name}'`, { hint: 'names must be unique' });
    this.names.add(name);
  }

  private checkShape(what: string, shape: Shape): Shape {
    for (const d of shape)
      if (typeof d === 'number' ? !(Number.isInteger(d) && d >= 0) : d.trim() === '')
        throw new ShapeError(what, `bad dim ${JSON.stringify(d)} in ${fmtShape(shape)}`);
    return shape.map(canonDim);
  }

  /** A graph input fed at run time. */
  input(name: string, dtype: DType, shape: Shape): Var {
    this.claim(name, 'input');
    const v = new Var(
      this,
      this.nextId++,
      'input',
      dtype,
      this.checkShape('input', shape),
      undefined,
      0,
      name,
    );
    this.inputs.push(v);
    return v;
  }

  /** A trainable (or frozen) parameter; it is a graph input, so weights stay out of the model. */
  param(name: string, shape: Shape, opts: ParamOpts = {}): Var {
    this.claim(name, 'param');
    const dtype = opts.dtype ?? 'float32';
    if (!isFloat(dtype))
      throw new ShapeError('param', `param '${name}' must be float, got ${dtype}`);
    const v = new Var(
      this,
      this.nextId++,
      'param',
      dtype,
      this.checkShape('param', shape),
      undefined,
      0,
      name,
      opts.frozen ?? false,
    );
    this.inputs.push(v);
    return v;
  }

  /** All params in creation order. */
  params(filter: { trainable?: boolean } = {}): Var[] {
    return this.inputs.filter(
      (v) =>
        v.kind === 'param' && (filter.trainable === undefined || filter.trainable !== v.frozen),
    );
  }

  /** A constant tensor stored in the model (an initializer). */
  constant(data: TypedArray | readonly number[], shape: readonly number[], dtype?: DType): Var {
    const d = dtype ?? (Array.isArray(data) ? 'float32' : dtypeOfArray(data as TypedArray));
    const arr =
      Array.isArray(data) || dtypeOfArray(data as TypedArray) !== d
        ? toTyped(d, data as ArrayLike<number>)
        : (data as TypedArray);
    const n = numel(shape);
    if (n !== arr.length)
      throw new ShapeError('constant', `${arr.length} values for shape ${fmtShape(shape)}`);
    return new Var(this, this.nextId++, 'constant', d, shape, undefined, 0, undefined, false, arr);
  }

  /** A 0-D constant, cached per (value, dtype). */
  scalar(value: number, dtype: DType = 'float32'): Var {
    if (!isFloat(dtype) && dtype !== 'bool' && !Number.isInteger(value))
      throw new ShapeError('scalar', `${value} is not a valid ${dtype} value`, {
        hint: 'cast the integer tensor to float first',
      });
    const key = `${dtype}:${Object.is(value, -0) ? '-0' : value}`;
    let v = this.scalars.get(key);
    if (!v) {
      v = this.constant([value], [], dtype);
      this.scalars.set(key, v);
    }
    return v;
  }

  /** Mark `v` as a graph output named `name`. */
  output(name: string, v: Var): void {
    if (v.graph !== this) throw new ShapeError('output', `'${name}' belongs to another graph`);
    this.claim(name, 'output');
    this.outputs.set(name, v);
  }

  /** Record one application of `op`. Used by the op functions in ops*.ts. */
  apply<A>(op: OpDef<A>, inputs: readonly Var[], attrs: A): Var[] {
    for (const x of inputs)
      if (x.graph !== this)
        throw new ShapeError(op.name, `input ${x} belongs to another graph`, {
          hint: 'build each graph from its own inputs',
        });
    const specs = op.infer(inputs, attrs);
    const node = new Node<A>(this.nextId++, op, inputs, attrs, this.currentRegion);
    node.outputs = specs.map(
      (s, i) =>
        new Var(
          this,
          this.nextId++,
          'op',
          s.dtype,
          s.shape.map(canonDim),
          node as Node<unknown>,
          i,
        ),
    );
    this.nodes.push(node as Node<unknown>);
    return node.outputs;
  }

  /**
   * Run `body` as a composite: its nodes are emitted as usual, but autodiff uses the returned
   * `vjp` instead of differentiating them. `inputs` are the values the vjp returns grads for.
   */
  composite(
    name: string,
    inputs: readonly Var[],
    body: () => { outputs: Var[]; vjp: VjpFn },
  ): Var[] {
    const region = this.openRegion('composite', name, inputs);
    try {
      const { outputs, vjp } = body();
      region.outputs = outputs;
      region.vjp = vjp;
      return outputs;
    } finally {
      this.regionStack.pop();
    }
  }

  /**
   * Run `fn(...inputs)` as a checkpointed block: in the backward pass its forward is rebuilt
   * and differentiated instead of keeping its intermediates alive. `fn` must only build graph.
   */
  checkpoint(name: string, inputs: readonly Var[], fn: (...xs: Var[]) => Var[]): Var[] {
    const region = this.openRegion('checkpoint', name, inputs);
    try {
      region.rebuild = fn;
      region.outputs = fn(...inputs);
      return region.outputs;
    } finally {
      this.regionStack.pop();
    }
  }

  /** Run `body` inside a named scope (only affects value names in dumps). */
  scope<T>(name: string, body: () => T): T {
    this.openRegion('scope', name, []);
    try {
      return body();
    } finally {
      this.regionStack.pop();
    }
  }

  private openRegion(kind: Region['kind'], name: string, inputs: readonly Var[]): Region {
    const region: Region = {
      id: this.nextId++,
      kind,
      name,
      parent: this.currentRegion,
      inputs: [...inputs],
      outputs: [],
    };
    this.regionStack.push(region);
    return region;
  }
}
