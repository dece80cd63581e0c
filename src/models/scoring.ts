// Scoring token sequences with the scoring graph: for every position after the first, log p of
// the actual token given all before it, whether it is the greedy choice, and optionally the
// top alternatives. Rows are right-padded into one batch. This is what log-likelihood
// evaluation (context + continuation) and a server's echo / prompt logprobs need.
import { MASK_MIN } from '../engine/attention.ts';
import type { Session, Tensor } from '../engine/runtime.ts';
import { tensor } from '../engine/runtime.ts';
import { ConfigError } from '../util/errors.ts';
import { DECODE_IO } from './graphs.ts';

/** What scoring needs from a model. */
export interface ScoreModel {
  readonly spec: { readonly vocabSize: number; readonly maxPositions: number };
  scoreSession(topK?: number): Promise<Session>;
  weightFeeds(): Record<string, Tensor>;
}

/** Per-token scores of one sequence: entry i is about token i + 1 given tokens 0..i. */
export interface SequenceScores {
  logprobs: number[];
  isGreedy: boolean[];
  /** Top alternatives per position, most likely first, when asked for. */
  top?: { token: number; logprob: number }[][];
}

/**
 * Scores `sequences` (each ≥ 2 tokens, at most the context) in batches of `batchSize`.
 * @example
 * const [s] = await scoreSequences(model, [[...ctx, ...cont]]);
 * const ll = s.logprobs.slice(ctx.length - 1).reduce((a, b) => a + b, 0);
 */
export async function scoreSequences(
  model: ScoreModel,
  sequences: readonly (readonly number[])[],
  opts: { topK?: number; batchSize?: number } = {},
): Promise<SequenceScores[]> {
  const k = opts.topK ?? 0;
  const bs = opts.batchSize ?? 16;
  for (const [i, s] of sequences.entries()) {
    if (s.length < 2)
      throw new ConfigError(`sequence ${i} has ${s.length} token(s); scoring needs 2 or more`, {
        field: 'sequences',
      });
    if (s.length - 1 > model.spec.maxPositions)
      throw new ConfigError(
        `sequence ${i} has ${s.length} tokens, more than the context of ${model.spec.maxPositions} + 1`,
        { field: 'sequences' },
      );
  }
  const session = await model.scoreSession(k);
  const out: SequenceScores[] = [];
  for (let start = 0; start < sequences.length; start += bs) {
    const batch = sequences.slice(start, start + bs);
    const B = batch.length;
    const T = Math.max(...batch.map((s) => s.length - 1));
    const ids = new BigInt64Array(B * T);
    const targets = new BigInt64Array(B * T);
    const pos = new BigInt64Array(B * T);
    const bias = new Float32Array(B * T * T).fill(MASK_MIN);
    batch.forEach((s, b) => {
      const n = s.length - 1;
      for (let t = 0; t < T; t++) {
        const real = t < n;
        ids[b * T + t] = BigInt(real ? s[t]! : 0);
        targets[b * T + t] = BigInt(real ? s[t + 1]! : 0);
        pos[b * T + t] = BigInt(real ? t : 0);
        // Causal over real keys; a padding query sees only itself.
        for (let j = 0; j <= (real ? t : -1); j++) bias[(b * T + t) * T + j] = 0;
        if (!real) bias[(b * T + t) * T + t] = 0;
      }
    });
    const r = await session.run({
      ...model.weightFeeds(),
      [DECODE_IO.ids]: tensor('int64', [B, T], ids),
      [DECODE_IO.positions]: tensor('int64', [B, T], pos),
      [DECODE_IO.targets]: tensor('int64', [B, T], targets),
      [DECODE_IO.bias]: tensor('float32', [B, 1, T, T], bias),
    });
    const lp = r.logprobs!.data as Float32Array;
    const greedy = r.is_greedy!.data as BigInt64Array;
    const topIds = k > 0 ? (r.top_ids!.data as BigInt64Array) : undefined;
    const topLp = k > 0 ? (r.top_logprobs!.data as Float32Array) : undefined;
    batch.forEach((s, b) => {
      const n = s.length - 1;
      const sc: SequenceScores = { logprobs: [], isGreedy: [] };
      if (k > 0) sc.top = [];
      for (let t = 0; t < n; t++) {
        sc.logprobs.push(lp[b * T + t]!);
        sc.isGreedy.push(greedy[b * T + t] === 1n);
        if (topIds && topLp)
          sc.top!.push(
            Array.from({ length: k }, (_, j) => ({
              token: Number(topIds[(b * T + t) * k + j]),
              logprob: topLp[(b * T + t) * k + j]!,
            })),
          );
      }
      out.push(sc);
    });
  }
  return out;
}
