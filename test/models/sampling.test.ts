// Sampling controls on hand-made logits, against an independent transcription of
// transformers' logits processors (RepetitionPenalty, Temperature, TopK, TopP warpers).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  applyLogitProcessors,
  applyPresenceFrequency,
  applyRepetitionPenalty,
  argmax,
  checkSampling,
  logitBiasEntries,
  nextTokenDistribution,
  sampleToken,
  topEntries,
  topLogprobs,
} from '../../src/models/sampling.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

/** transformers' order of warpers, step by step on a float64 copy: the kept ids. */
function hfKept(logits: number[], temperature: number, topK: number, topP: number): number[] {
  let s = logits.map((x) => x / temperature);
  if (topK > 0) {
    const kth = [...s].sort((a, b) => b - a)[Math.min(topK, s.length) - 1]!;
    s = s.map((x) => (x < kth ? Number.NEGATIVE_INFINITY : x));
  }
  if (topP < 1) {
    // Sort ascending, cumulative softmax, drop where cumsum <= 1 - top_p, keep the last one.
    const order = s.map((_, i) => i).sort((a, b) => s[a]! - s[b]! || b - a);
    const m = Math.max(...s);
    const e = order.map((i) => Math.exp(s[i]! - m));
    const z = e.reduce((a, b) => a + b, 0);
    let cum = 0;
    order.forEach((i, j) => {
      cum += e[j]! / z;
      if (cum <= 1 - topP && j < order.length - 1) s[i] = Number.NEGATIVE_INFINITY;
    });
  }
  return s.flatMap((x, i) => (x === Number.NEGATIVE_INFINITY ? [] : [i]));
}

test('argmax takes the lowest index on ties; top entries are sorted with stable ties', () => {
  assert.equal(argmax([1, 5, 5, 2]), 1);
  const xs = [0.5, 3, -1, 3, 2, 2, 7];
  assert.deepEqual(
    topEntries(xs, 4).map((e) => e.index),
    [6, 1, 3, 4],
  );
  assert.deepEqual(topLogprobs(xs, 2), [
    { token: 6, logprob: 7 },
    { token: 1, logprob: 3 },
  ]);
  const rng = new Rng(3);
  const big = Array.from({ length: 500 }, () => Math.round(rng.normal() * 4));
  const want = big
    .map((v, i) => ({ v, i }))
    .sort((a, b) => b.v - a.v || a.i - b.i)
    .slice(0, 17)
    .map((e) => e.i);
  assert.deepEqual(
    topEntries(big, 17).map((e) => e.index),
    want,
  );
});

test('repetition penalty: positive logits divided, negative multiplied, once per token', () => {
  const l = Float32Array.from([2, -2, 0, 4]);
  applyRepetitionPenalty(l, [0, 1, 1, 2, 0], 2);
  assert.deepEqual([...l], [1, -4, 0, 4]);
  // With penalty 4 the repeated best token falls below the runner-up, even greedily.
  const row = Float32Array.from([1, 3, 2, -1]);
  assert.equal(sampleToken(row, { repetition_penalty: 4 }, new Rng(0), [1]), 2);
});

test('top-k, top-p and temperature keep the tokens transformers keeps', () => {
  const rng = new Rng(11);
  for (let trial = 0; trial < 300; trial++) {
    const n = 2 + rng.int(30);
    // Rounded logits give ties, which top-k must keep together.
    const logits = Array.from({ length: n }, () => Math.round(rng.normal() * 6) / 2);
    const temperature = [0.5, 1, 1.7][trial % 3]!;
    const topK = [0, 1, 3, 8][trial % 4]!;
    const topP = [1, 0.9, 0.5, 0.2, 0.97][trial % 5]!;
    const d = nextTokenDistribution(Float32Array.from(logits), {
      temperature,
      top_k: topK,
      top_p: topP,
    });
    assert.deepEqual(
      [...d.ids].sort((a, b) => a - b),
      hfKept(logits, temperature, topK, topP),
      `trial ${trial}: ${JSON.stringify({ logits, temperature, topK, topP })}`,
    );
    // Weights are softmax(logits / T) restricted to the kept set.
    const m = Math.max(...logits);
    d.ids.forEach((id, j) => {
      assert.ok(Math.abs(d.weights[j]! - Math.exp((logits[id]! - m) / temperature)) < 1e-12);
    });
  }
});

test('top-k keeps every token tied with the k-th; top_p = tiny keeps the argmax only', () => {
  const d = nextTokenDistribution(Float32Array.from([3, 3, 1, 0]), { temperature: 1, top_k: 1 });
  assert.deepEqual(d.ids, [0, 1]);
  const rng = new Rng(5);
  for (let i = 0; i < 50; i++)
    assert.equal(
      sampleToken(Float32Array.from([1, 3, 2, -1]), { temperature: 1, top_p: 0.01 }, rng),
      1,
    );
  // Temperature 0 is greedy whatever top_k / top_p say.
  assert.equal(sampleToken(Float32Array.from([1, 3, 2, 9]), { top_k: 2, top_p: 0.1 }, rng), 3);
});

test('sampled frequencies follow softmax(logits / T); a seed reproduces the draws', () => {
  const logits = [1, 3, 2, -1];
  const T = 1.5;
  const rng = new Rng(42);
  const counts = [0, 0, 0, 0];
  const N = 20000;
  for (let i = 0; i < N; i++)
    counts[sampleToken(Float32Array.from(logits), { temperature: T }, rng)]!++;
  const z = logits.map((x) => Math.exp(x / T));
  const tot = z.reduce((a, b) => a + b);
  counts.forEach((c, i) => {
    const p = z[i]! / tot;
    // 5 standard deviations of a binomial proportion.
    assert.ok(
      Math.abs(c / N - p) < 5 * Math.sqrt((p * (1 - p)) / N),
      `token ${i}: ${c / N} vs ${p}`,
    );
  });
  const draw = (seed: number) => {
    const r = new Rng(seed);
    return Array.from({ length: 30 }, () =>
      sampleToken(Float32Array.from(logits), { temperature: 1, top_k: 3, top_p: 0.9 }, r),
    );
  };
  assert.deepEqual(draw(7), draw(7));
  assert.notDeepEqual(draw(7), draw(8));
});

test('bad sampling parameters are ConfigErrors naming the field', () => {
  const field = (p: object) => {
    try {
      checkSampling(p);
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.field;
    }
    return undefined;
  };
  assert.equal(field({ temperature: -1 }), 'temperature');
  assert.equal(field({ top_k: 1.5 }), 'top_k');
  assert.equal(field({ top_p: 0 }), 'top_p');
  assert.equal(field({ top_p: 1.2 }), 'top_p');
  assert.equal(field({ repetition_penalty: 0 }), 'repetition_penalty');
  assert.equal(field({ presence_penalty: 2.5 }), 'presence_penalty');
  assert.equal(field({ frequency_penalty: -3 }), 'frequency_penalty');
  assert.equal(field({ frequency_penalty: Number.NaN }), 'frequency_penalty');
  assert.equal(field({ logit_bias: { x: 1 } }), 'logit_bias.x');
  assert.equal(field({ logit_bias: { '3': 101 } }), 'logit_bias.3');
  assert.equal(field({ logit_bias: { '-1': 1 } }), 'logit_bias.-1');
  assert.equal(
    field({
      temperature: 0.7,
      top_k: 40,
      top_p: 0.95,
      repetition_penalty: 1.1,
      presence_penalty: -2,
      frequency_penalty: 2,
      logit_bias: { '5': -100, '0': 100 },
    }),
    undefined,
  );
});

test("presence and frequency penalties follow OpenAI's definition over generated-token counts", () => {
  const logits = Float32Array.from([1, 2, 3, 4, -1]);
  const counts = new Map([
    [1, 2],
    [3, 1],
    [4, 0],
  ]);
  applyPresenceFrequency(logits, counts, 0.5, 0.25);
  // logit[j] -= frequency · c[j] + presence · (c[j] > 0)
  const want = [1, 2 - 0.25 * 2 - 0.5, 3, 4 - 0.25 - 0.5, -1];
  for (const [i, w] of want.entries()) assert.ok(Math.abs(logits[i]! - w) < 1e-6, `token ${i}`);
  // Negative values encourage repetition.
  const l2 = Float32Array.from([0, 0]);
  applyPresenceFrequency(l2, new Map([[1, 3]]), -1, -0.5);
  assert.deepEqual([...l2], [0, 2.5]);
  // They change the greedy choice: token 3 (count 1) loses to token 2 once penalised enough.
  assert.equal(sampleToken(Float32Array.from([1, 2, 3, 4]), {}, new Rng(0)), 3);
  assert.equal(
    sampleToken(
      Float32Array.from([1, 2, 3, 4]),
      { presence_penalty: 1, frequency_penalty: 0.5 },
      new Rng(0),
      [],
      new Map([[3, 1]]),
    ),
    2,
  );
});

test('logit_bias adds per token; processors run bias, repetition, then presence/frequency', () => {
  assert.deepEqual(
    new Map(logitBiasEntries({ '2': 5, '0': -100 })),
    new Map([
      [2, 5],
      [0, -100],
    ]),
  );
  assert.deepEqual(logitBiasEntries(new Map([[7, 1]])), [[7, 1]]);
  assert.throws(() => logitBiasEntries({ '9': 1 }, 8), /logit_bias key '9'/);
  const l = Float32Array.from([1, 2, 3, 4]);
  applyLogitProcessors(l, { logit_bias: { '2': 5, '0': -100 } });
  assert.deepEqual([...l], [-99, 2, 8, 4]);
  // +100 makes a token certain at any temperature; -100 excludes it.
  for (let i = 0; i < 20; i++)
    assert.equal(
      sampleToken(
        Float32Array.from([1, 2, 3, 4]),
        { temperature: 1, logit_bias: { '0': 100 } },
        new Rng(i),
      ),
      0,
    );
  assert.equal(
    sampleToken(Float32Array.from([1, 2, 3, 4]), { logit_bias: { '3': -100 } }, new Rng(0)),
    2,
  );
  // Order: (2 + 2) / 2 − (0.5 + 0.25) = 1.25; repetition before bias would give 2/2 + 2 − 0.75.
  const o = Float32Array.from([2]);
  applyLogitProcessors(
    o,
    {
      logit_bias: { '0': 2 },
      repetition_penalty: 2,
      presence_penalty: 0.5,
      frequency_penalty: 0.25,
    },
    { seen: [0], counts: new Map([[0, 1]]) },
  );
  assert.ok(Math.abs(o[0]! - 1.25) < 1e-6, `${o[0]}`);
});
