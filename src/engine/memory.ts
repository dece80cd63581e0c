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

/** Peak live intermediate memory when the graph's nodes run in emission order. */
export function memoryProfile(g: Graph): MemoryProfile {
  const nodes = liveNodes(g);
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
