// Serialises a Graph to an ONNX ModelProto (onnx-proto): prunes nodes no output needs, names
// values, lets each op table entry emit its nodes, turns constants into initializers and
// symbolic dims into runtime Shape reads. IK_DUMP_GRAPH=dir writes every model built here.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { env } from '../util/env.ts';
import { ShapeError } from '../util/errors.ts';
import type { DType } from './dtype.ts';
import { ONNX_DTYPE, toTyped } from './dtype.ts';
import type { Attr, Emitter, Graph, Node, Var } from './graph.ts';
import type { Dim, Shape } from './shape.ts';
import { dimCoef, dimEq, dimSymbols, dimTerms, fmtShape } from './shape.ts';

const { onnx } = onnxProto;

/** ONNX default-domain opset the engine emits (onnxruntime-node 1.30 loads up to 25). */
export const OPSET = 23;
/** IR version matching OPSET. */
export const IR_VERSION = 10;

/** Nodes needed to compute the graph outputs (or `roots`), in creation order. */
export function liveNodes(
  g: Graph,
  roots: readonly Var[] = [...g.outputs.values()],
): Node<unknown>[] {
  const live = new Set<Node<unknown>>();
  const stack = [...roots];
  while (stack.length > 0) {
    const v = stack.pop() as Var;
    if (v.node && !live.has(v.node)) {
      live.add(v.node);
      stack.push(...v.node.inputs);
    }
  }
  return g.nodes.filter((n) => live.has(n));
}

function attrProto(name: string, a: Attr): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in a) return { name, type: T.INT, i: a.i };
  if ('f' in a) return { name, type: T.FLOAT, f: a.f };
  if ('s' in a) return { name, type: T.STRING, s: new TextEncoder().encode(a.s) };
  if ('ints' in a) return { name, type: T.INTS, ints: [...a.ints] };
  return { name, type: T.FLOATS, floats: [...a.floats] };
}

function valueInfo(name: string, dtype: DType, shape: Shape): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE[dtype],
        shape: {
          dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

function tensorProto(name: string, dtype: DType, dims: readonly number[], data: ArrayBufferView) {
  return {
    name,
    dataType: ONNX_DTYPE[dtype],
    dims: [...dims],
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

class ModelEmitter implements Emitter {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly inits: onnxProto.onnx.ITensorProto[] = [];
  private names = new Map<Var, string>();
  private used = new Set<string>();
  private consts = new Map<string, string>();
  private dims = new Map<string, string>();
  private counter = 0;

  constructor(private readonly g: Graph) {
    for (const v of g.inputs) this.assign(v, v.name as string);
  }

  assign(v: Var, name: string): void {
    this.names.set(v, name);
    this.used.add(name);
  }

  isNamed(v: Var): boolean {
    return this.names.has(v);
  }

  fresh(hint: string): string {
    let n = `${hint}_${this.counter++}`;
    while (this.used.has(n)) n = `${hint}_${this.counter++}`;
    this.used.add(n);
    return n;
  }

  name(v: Var): string {
    let n = this.names.get(v);
    if (n !== undefined) return n;
    if (v.kind === 'constant') {
      n = this.fresh(v.shape.length === 0 ? 'scalar' : 'const');
      const dims = v.shape as number[];
      this.inits.push(tensorProto(n, v.dtype, dims, v.data as ArrayBufferView));
    } else {
      const region = v.node?.region;
      n = this.fresh(region ? `${region.name}/${v.node?.op.name}` : (v.node?.op.name ?? 'v'));
    }
    this.names.set(v, n);
    return n;
  }

  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attrs: Readonly<Record<string, Attr>> = {},
    domain?: string,
  ): void {
    this.nodes.push({
      opType,
      input: [...inputs],
      output: [...outputs],
      // Named after the first output (which carries the region path), so an ORT profile's
      // kernel events say which part of the step each node belongs to.
      name: `${opType}:${outputs[0] ?? this.nodes.length}`,
      attribute: Object.entries(attrs).map(([k, a]) => attrProto(k, a)),
      ...(domain ? { domain } : {}),
    });
  }

  tmp(hint: string): string {
    return this.fresh(hint);
  }

  constI64(values: readonly number[], scalar = false): string {
    const key = `i64${scalar ? 's' : ''}:${values.join(',')}`;
    let n = this.consts.get(key);
    if (n === undefined) {
      n = this.fresh('shape');
      this.inits.push(
        tensorProto(n, 'int64', scalar ? [] : [values.length], toTyped('int64', values)),
      );
      this.consts.set(key, n);
    }
    return n;
  }

  constScalar(value: number, dtype: DType): string {
    const key = `${dtype}:${value}`;
    let n = this.consts.get(key);
    if (n === undefined) {
      n = this.fresh('scalar');
      this.inits.push(tensorProto(n, dtype, [], toTyped(dtype, [value])));
      this.consts.set(key, n);
    }
    return n;
  }

  shapeTensor(dims: Shape, opts: { copyFrom?: Shape; bcastFrom?: Shape } = {}): string {
    type Piece = number | { sym: Dim };
    const pieces: Piece[] = dims.map((d, i) => {
      if (opts.copyFrom && i < opts.copyFrom.length && d !== 0 && dimEq(opts.copyFrom[i]!, d))
        return 0;
      if (opts.bcastFrom) {
        const j = i - (dims.length - opts.bcastFrom.length);
        if (j >= 0 && dimEq(opts.bcastFrom[j]!, d)) return 1;
      }
      return typeof d === 'number' ? d : { sym: d };
    });
    const syms = pieces.filter((p) => typeof p !== 'number');
    if (opts.copyFrom && syms.length === 1) {
      // Reshape infers one -1 dim from the element count.
      return this.constI64(pieces.map((p) => (typeof p === 'number' ? p : -1)));
    }
    if (syms.length === 0) return this.constI64(pieces as number[]);
    const parts: string[] = [];
    let run: number[] = [];
    for (const p of pieces) {
      if (typeof p === 'number') run.push(p);
      else {
        if (run.length > 0) parts.push(this.constI64(run));
        run = [];
        parts.push(this.resolveDim(p.sym));
      }
    }
    if (run.length > 0) parts.push(this.constI64(run));
    const out = this.fresh('shape_of');
    this.node('Concat', parts, [out], { axis: { i: 0 } });
    return out;
  }

  /** A [1] int64 tensor holding the runtime value of a symbolic dim. */
  private resolveDim(d: Dim): string {
    const key = String(d);
    const hit = this.dims.get(key);
    if (hit !== undefined) return hit;
    let out: string | undefined;
    for (const v of this.g.inputs) {
      const i = v.shape.findIndex((s) => dimEq(s, d));
      if (i >= 0) {
        out = this.fresh(`dim_${key}`);
        this.node('Shape', [this.name(v)], [out], { start: { i }, end: { i: i + 1 } });
        break;
      }
    }
    if (out === undefined) {
      const terms = dimTerms(d);
      const syms = dimSymbols(d);
      if (terms.length > 1) out = this.combine('Add', terms);
      else if (syms.length > 1 || (syms.length === 1 && dimCoef(d) !== 1))
        out = this.combine('Mul', [...syms, ...(dimCoef(d) !== 1 ? [dimCoef(d)] : [])]);
      else
        throw new ShapeError('emit', `no graph input has symbolic dim '${d}'`, {
          hint: 'declare an input whose shape uses this dim, or use static shapes',
        });
    }
    this.dims.set(key, out);
    return out;
  }

  private combine(op: 'Add' | 'Mul', parts: readonly Dim[]): string {
    let acc = '';
    for (const p of parts) {
      const t = typeof p === 'number' ? this.constI64([p]) : this.resolveDim(p);
      if (acc === '') acc = t;
      else {
        const o = this.fresh('dim');
        this.node(op, [acc, t], [o]);
        acc = o;
      }
    }
    return acc;
  }
}

/** Build the ONNX ModelProto for the graph's outputs. */
export function toModelProto(g: Graph): onnxProto.onnx.ModelProto {
  if (g.outputs.size === 0)
    throw new ShapeError('emit', `graph '${g.name}' has no outputs`, {
      hint: 'call g.output(name, v)',
    });
  const e = new ModelEmitter(g);
  const identities: [string, Var][] = [];
  for (const [name, v] of g.outputs) {
    if (v.kind === 'op' && !e.isNamed(v)) e.assign(v, name);
    else identities.push([name, v]);
  }
  for (const n of liveNodes(g)) n.op.emit(e, n);
  for (const [name, v] of identities) e.node('Identity', [e.name(v)], [name]);
  const graph: onnxProto.onnx.IGraphProto = {
    name: g.name,
    node: e.nodes,
    initializer: e.inits,
    input: g.inputs.map((v) => valueInfo(v.name as string, v.dtype, v.shape)),
    output: [...g.outputs].map(([name, v]) => valueInfo(name, v.dtype, v.shape)),
  };
  return onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'instructkit',
    opsetImport: [
      { domain: '', version: OPSET },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph,
  });
}

let dumpSeq = 0;

/** Serialise to ONNX protobuf bytes (and dump them when IK_DUMP_GRAPH is set). */
export function toBytes(g: Graph): Uint8Array {
  const model = toModelProto(g);
  const buf = onnx.ModelProto.encode(model).finish(); // a Buffer under Node
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const dir = env.dumpGraphDir;
  if (dir !== undefined) {
    mkdirSync(dir, { recursive: true });
    const base = join(dir, `${g.name}-${process.pid}-${dumpSeq++}`);
    writeFileSync(`${base}.onnx`, bytes);
    writeFileSync(`${base}.txt`, describe(model));
  }
  return bytes;
}

/** A readable listing of a model: inputs, outputs and one line per node. */
export function describe(model: onnxProto.onnx.IModelProto): string {
  const g = model.graph as onnxProto.onnx.IGraphProto;
  const shape = (v: onnxProto.onnx.IValueInfoProto) =>
    fmtShape((v.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimParam || Number(d.dimValue)));
  const lines = [
    `graph ${g.name}: ${g.node?.length} nodes, ${g.initializer?.length} initializers`,
    ...(g.input ?? []).map((v) => `  input  ${v.name} ${shape(v)}`),
    ...(g.output ?? []).map((v) => `  output ${v.name} ${shape(v)}`),
    ...(g.node ?? []).map(
      (n) =>
        `  ${n.domain ? `${n.domain}.` : ''}${n.opType}(${n.input?.join(', ')}) -> ${n.output?.join(', ')}`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
