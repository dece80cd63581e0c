// Static memory analysis of a built graph: replays the live nodes in onnxruntime's default
// execution order (or emission order) and tracks the bytes of intermediate values still
// needed, the figure activation recomputation lowers. ORT's own allocator adds its overheads.
import { ShapeError } from '../util/errors.ts';
import { DTYPE_BYTES } from './dtype.ts';
import type { Graph, Node, Var } from './graph.ts';
import { liveNodes } from './onnx.ts';
import { isStatic } from './shape.ts';

/** Result of `memoryProfile`. */
export interface MemoryProfile {
  /** Most bytes of op results alive at once (graph inputs and constants excluded). */
  peakBytes: number;
  /** Most bytes alive at once of op results that are not graph outputs (activations, temps). */
  peakTempBytes: number;
  /** Number of such temporaries alive at that moment. */
  peakTempValues: number;
  /** Live nodes replayed. */
  nodes: number;
}

function bytes(v: Var): number {
  if (!isStatic(v.shape))
    throw new ShapeError('memory_profile', `${v} has a symbolic shape`, {
      hint: 'profile a static-shape graph',
    });
  return v.shape.reduce((p, q) => p * q, 1) * DTYPE_BYTES[v.dtype];
}

/**
 * onnxruntime's default execution order (GraphViewer, ExecutionOrder::DEFAULT): a reverse DFS
 * from the leaf nodes (no consumers), highest node index first, visiting inputs highest index
 * first, emitting each node after its inputs (post-order).
 */
export function ortOrder(nodes: readonly Node<unknown>[]): Node<unknown>[] {
  const index = new Map(nodes.map((n, i) => [n, i]));
  const consumed = new Set<Node<unknown>>();
  const inputsOf = nodes.map((n) => {
    const ins = [
      ...new Set(n.inputs.flatMap((x) => (x.node && index.has(x.node) ? [x.node] : []))),
    ];
    for (const p of ins) consumed.add(p);
    return ins.sort((a, b) => (index.get(a) as number) - (index.get(b) as number));
  });
  const stack: [Node<unknown>, boolean][] = nodes
    .filter((n) => !consumed.has(n))
    .map((n) => [n, false]);
  const visited = new Set<Node<unknown>>();
  const order: Node<unknown>[] = [];
  while (stack.length > 0) {
    const [n, leave] = stack.pop() as [Node<unknown>, boolean];
    if (leave) {
      order.push(n);
      continue;
    }
    if (visited.has(n)) continue;
    visited.add(n);
    stack.push([n, true]);
    for (const p of inputsOf[index.get(n) as number] as Node<unknown>[])
      if (!visited.has(p)) stack.push([p, false]);
  }
  return order;
}

/** Peak live intermediate memory when the graph's nodes run in `order`. @default 'ort' */
export function memoryProfile(g: Graph, opts: { order?: 'ort' | 'emission' } = {}): MemoryProfile {
  const live0 = liveNodes(g);
  const nodes = (opts.order ?? 'ort') === 'ort' ? ortOrder(live0) : live0;
  const outputs = new Set(g.outputs.values());
  const lastUse = new Map<Var, number>();
  nodes.forEach((n, i) => {
    for (const x of n.inputs) lastUse.set(x, i);
  });
  for (const v of outputs) lastUse.set(v, nodes.length);
  const p = { peakBytes: 0, peakTempBytes: 0, peakTempValues: 0, nodes: nodes.length };
  let live = 0;
  let temp = 0;
  let tempCount = 0;
  nodes.forEach((n, i) => {
    for (const o of n.outputs) {
      if (!lastUse.has(o)) continue;
      live += bytes(o);
      if (!outputs.has(o)) {
        temp += bytes(o);
        tempCount++;
      }
    }
    p.peakBytes = Math.max(p.peakBytes, live);
    if (temp > p.peakTempBytes) {
      p.peakTempBytes = temp;
      p.peakTempValues = tempCount;
    }
    for (const x of new Set(n.inputs))
      if (x.kind === 'op' && lastUse.get(x) === i && !outputs.has(x)) {
        live -= bytes(x);
        temp -= bytes(x);
        tempCount--;
      }
  });
  return p;
}
