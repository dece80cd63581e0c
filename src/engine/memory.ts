// Static memory analysis of a built graph: replays the live nodes in emission order and tracks
// the bytes of intermediate values that are still needed, the figure activation recomputation
// lowers. onnxruntime plans its own buffers; this measures what the graph forces to stay alive.
import { ShapeError } from '../util/errors.ts';
import { DTYPE_BYTES } from './dtype.ts';
import type { Graph, Var } from './graph.ts';
import { liveNodes } from './onnx.ts';
import { isStatic } from './shape.ts';

/** Result of `memoryProfile`. */
export interface MemoryProfile {
  /** Most bytes of op results alive at once (graph inputs and constants excluded). */
  peakBytes: number;
  /** Number of op results alive at that moment. */
  peakValues: number;
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

/** Peak live intermediate memory when the graph's nodes run in emission order. */
export function memoryProfile(g: Graph): MemoryProfile {
  const nodes = liveNodes(g);
  const lastUse = new Map<Var, number>();
  nodes.forEach((n, i) => {
    for (const x of n.inputs) lastUse.set(x, i);
  });
  for (const v of g.outputs.values()) lastUse.set(v, nodes.length);
  let live = 0;
  let count = 0;
  let peakBytes = 0;
  let peakValues = 0;
  nodes.forEach((n, i) => {
    for (const o of n.outputs)
      if (lastUse.has(o)) {
        live += bytes(o);
        count++;
      }
    if (live > peakBytes) {
      peakBytes = live;
      peakValues = count;
    }
    for (const x of new Set(n.inputs))
      if (x.kind === 'op' && lastUse.get(x) === i) {
        live -= bytes(x);
        count--;
      }
  });
  return { peakBytes, peakValues, nodes: nodes.length };
}
