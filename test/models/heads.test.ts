// Scalar heads (reward model's score, PPO's value head) on the decoder: on a batch with right
// and left padding, the score of each row equals w · h_last (+ b) computed by hand from the
// float64 reference forward of the unpadded row, and the gradient reaches both the head
// (∂Σscore/∂w = Σ h_last, ∂/∂b = B) and the base model (∂/∂ final-norm gain = Σ w ⊙ n_last).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grad } from '../../src/engine/autodiff.ts';
import { Graph, type Var } from '../../src/engine/graph.ts';
import { createSession, type Tensor, tensor } from '../../src/engine/runtime.ts';
import { parseHfConfig } from '../../src/models/config.ts';
import {
  headForward,
  headTensors,
  REWARD_HEAD,
  type ScalarHead,
  VALUE_HEAD,
} from '../../src/models/heads.ts';
import { Rng } from '../../src/util/rng.ts';
import { randomLlamaWeights, referenceHidden } from './reference-llama.ts';

const spec = parseHfConfig({
  model_type: 'llama',
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 32,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
});
const weights = randomLlamaWeights(spec, 31);
const T = 6;
// Real tokens and padding side of each row.
const rows: { ids: number[]; left: boolean }[] = [
  { ids: [3, 17, 8, 25], left: false },
  { ids: [9, 1, 33, 4, 12], left: true },
  { ids: [5, 6, 7, 8, 9, 10], left: false },
];

for (const head of [REWARD_HEAD, VALUE_HEAD] as ScalarHead[]) {
  test(`${head.weight}: score = w·h_last (+b) by hand; gradient reaches head and base`, async () => {
    const rng = new Rng(head.weight);
    const headW = new Map<string, Float32Array>();
    for (const [name, shape] of headTensors(spec, head))
      headW.set(
        name,
        Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
      );

    const g = new Graph({ name: 'head' });
    const params = new Map<string, Var>();
    for (const [n, t] of weights) params.set(n, g.param(n, t.shape));
    for (const [n, shape] of headTensors(spec, head)) params.set(n, g.param(n, shape));
    const ids = g.input('input_ids', 'int64', ['B', 'T']);
    const positions = g.input('position_ids', 'int64', ['B', 'T']);
    const attentionMask = g.input('attention_mask', 'int64', ['B', 'T']);
    const score = headForward(spec, head, (n) => params.get(n)!, { ids, positions, attentionMask });
    g.output('score', score);
    const wrt = [head.weight, ...(head.bias ? [head.bias] : []), 'model.norm.weight'];
    const grads = grad(
      score.sum(),
      wrt.map((n) => params.get(n)!),
    );
    for (const [i, d] of grads.entries()) g.output(`d${i}`, d!);

    const B = rows.length;
    const idData = new BigInt64Array(B * T);
    const posData = new BigInt64Array(B * T);
    const maskData = new BigInt64Array(B * T);
    rows.forEach((r, b) => {
      const pad = T - r.ids.length;
      r.ids.forEach((id, i) => {
        const at = b * T + (r.left ? pad + i : i);
        idData[at] = BigInt(id);
        posData[at] = BigInt(i);
        maskData[at] = 1n;
      });
    });
    const feeds: Record<string, Tensor> = {
      input_ids: tensor('int64', [B, T], idData),
      position_ids: tensor('int64', [B, T], posData),
      attention_mask: tensor('int64', [B, T], maskData),
    };
    for (const [n, t] of weights) feeds[n] = tensor('float32', t.shape, t.data);
    for (const [n, shape] of headTensors(spec, head))
      feeds[n] = tensor('float32', shape, headW.get(n)!);
    const out = await (await createSession(g, { threads: 1 })).run(feeds);

    const w = headW.get(head.weight)!;
    const b = head.bias ? headW.get(head.bias)![0]! : 0;
    const gain = weights.get('model.norm.weight')!.data;
    const D = spec.hiddenSize;
    const dW = new Float64Array(D);
    const dGain = new Float64Array(D);
    const scores = out.score!.data as Float32Array;
    assert.deepEqual(out.score!.shape, [B, 1]);
    rows.forEach((r, row) => {
      const h = referenceHidden(spec, weights, r.ids).at(-1)!;
      let want = b;
      for (let i = 0; i < D; i++) {
        want += w[i]! * h[i]!;
        dW[i] += h[i]!;
        // h = gain ⊙ n, so ∂(w·h)/∂gain = w ⊙ n = w ⊙ h / gain.
        dGain[i] += (w[i]! * h[i]!) / gain[i]!;
      }
      assert.ok(
        Math.abs(scores[row]! - want) < 1e-4,
        `row ${row} (${r.left ? 'left' : 'right'} padded): ${scores[row]} vs ${want}`,
      );
    });
    const close = (got: Float32Array, want: ArrayLike<number>, what: string) => {
      for (let i = 0; i < want.length; i++)
        assert.ok(Math.abs(got[i]! - want[i]!) < 1e-4, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
    };
    close(out.d0!.data as Float32Array, dW, `∂/∂${head.weight}`);
    if (head.bias) close(out.d1!.data as Float32Array, [B], `∂/∂${head.bias}`);
    close(out[`d${wrt.length - 1}`]!.data as Float32Array, dGain, '∂/∂model.norm.weight');
  });
}
