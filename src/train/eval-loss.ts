// Held-out loss during training: the training forward without its backward, on the model's
// current weights, token-weighted over all evaluation rows (the same packing and masking).
import { Graph } from '../engine/graph.ts';
import { createSession, type Session, tensor } from '../engine/runtime.ts';
import type { LoraSpec } from '../models/decoder.ts';
import type { CausalLM } from '../models/lm.ts';
import { batchFeeds, type PackedRow } from './data.ts';

const sessions = new WeakMap<CausalLM, Promise<Session>>();

function evalSession(lm: CausalLM, lora: LoraSpec | undefined): Promise<Session> {
  let s = sessions.get(lm);
  if (!s) {
    const g = new Graph({ name: 'eval-loss' });
    const params: Record<string, ReturnType<Graph['input']>> = {};
    for (const [name, t] of lm.allWeights()) params[name] = g.input(name, 'float32', t.shape);
    // Evaluation runs without dropout.
    const { loss } = lm.trainingBuilder({ lora: lora ? { ...lora, dropout: 0 } : undefined })(
      g,
      params,
    );
    g.output('loss', loss);
    s = createSession(g);
    sessions.set(lm, s);
  }
  return s;
}

/** Mean next-token loss over `rows` (weighted by tokens in the loss). */
export async function evalLoss(
  lm: CausalLM,
  rows: readonly PackedRow[],
  o: { batchSize: number; padId: number; maxLength: number; lora?: LoraSpec },
): Promise<number> {
  const session = await evalSession(lm, o.lora);
  const weights: Record<string, ReturnType<typeof tensor>> = {};
  for (const [name, t] of lm.allWeights()) weights[name] = tensor('float32', t.shape, t.data);
  let total = 0;
  let count = 0;
  for (let i = 0; i < rows.length; i += o.batchSize) {
    const b = batchFeeds(rows.slice(i, i + o.batchSize), o.padId, o.maxLength);
    if (b.lossTokens === 0) continue;
    const out = await session.run({ ...weights, ...b.feeds }, ['loss']);
    total += (out.loss!.data as Float32Array)[0]! * b.lossTokens;
    count += b.lossTokens;
  }
  return count === 0 ? Number.NaN : total / count;
}
