// The local backend on a tiny random LLaMA: log-likelihoods against an independent computation
// (the decode graph's last-position logits on every prefix, log-softmax in float64), batching
// that does not change results, and acc / acc_norm of a multiple-choice task.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitPair } from '../../src/eval/backend.ts';
import { LocalBackend } from '../../src/eval/local.ts';
import { evaluateTask } from '../../src/eval/run.ts';
import { makeTask } from '../../src/eval/task.ts';
import { lastLogits } from '../../src/models/generate.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../../src/models/tiny.ts';

const corpus = Array.from(
  { length: 40 },
  (_, i) =>
    `Question ${i}: is the lamp ${['on', 'off', 'broken'][i % 3]}? Answer: ${['yes', 'no'][i % 2]}.`,
);
const { tokenizer } = trainTinyTokenizer(corpus, 360);
const spec = tinyLlamaConfig({
  vocabSize: 360,
  eosTokenId: tokenizer.eos!.id,
  padTokenId: tokenizer.pad!.id,
  maxPositions: 64,
  shape: {
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 16,
    // A larger init than HF's 0.02 so the random model has distinct, confident preferences.
    initializerRange: 0.5,
  },
});
const lm = CausalLM.random(spec, 11, tokenizer);

/** log p(continuation | context) from the decode graph, one prefix at a time, in float64. */
async function reference(context: string, continuation: string) {
  const [ctx, cont] = splitPair(context, continuation);
  const c = tokenizer.encode(ctx, { addSpecialTokens: false });
  const k = tokenizer.encode(cont, { addSpecialTokens: false });
  const ids = [...c, ...k];
  let logprob = 0;
  let isGreedy = true;
  for (let t = c.length; t < ids.length; t++) {
    const logits = await lastLogits(lm, ids.slice(0, t));
    let max = -Infinity;
    let arg = 0;
    logits.forEach((v, i) => {
      if (v > max) {
        max = v;
        arg = i;
      }
    });
    let z = 0;
    for (const v of logits) z += Math.exp(v - max);
    logprob += logits[ids[t]!]! - max - Math.log(z);
    if (arg !== ids[t]) isGreedy = false;
  }
  return { logprob, isGreedy };
}

const requests = [
  { context: 'Question 3: is the lamp on? Answer:', continuation: ' yes' },
  { context: 'Question 3: is the lamp on? Answer: ', continuation: 'no.' },
  { context: 'Is', continuation: ' the lamp broken? Answer: no.' },
  { context: 'Question 12: is the lamp off? Answer:', continuation: ' yes. Question 13' },
  { context: 'A', continuation: 'B' },
];

test('local log-likelihoods equal the sum of per-token log-probs from the decode graph', async () => {
  const got = await new LocalBackend(lm).loglikelihood(requests);
  for (const [i, r] of requests.entries()) {
    const want = await reference(r.context, r.continuation);
    assert.ok(
      Math.abs(got[i]!.logprob - want.logprob) < 1e-4 * Math.max(1, Math.abs(want.logprob)),
      `request ${i}: ${got[i]!.logprob} vs ${want.logprob}`,
    );
    assert.equal(got[i]!.isGreedy, want.isGreedy, `request ${i} is_greedy`);
  }
  assert.ok(
    got.every((g) => g.logprob < 0),
    'log-likelihoods are negative',
  );
});

test('local log-likelihoods do not depend on the batch they are padded into', async () => {
  const one = await new LocalBackend(lm, { batchSize: 1 }).loglikelihood(requests);
  const all = await new LocalBackend(lm, { batchSize: 8 }).loglikelihood(requests);
  const two = await new LocalBackend(lm, { batchSize: 2 }).loglikelihood([...requests].reverse());
  two.reverse();
  for (let i = 0; i < requests.length; i++) {
    for (const other of [all[i]!, two[i]!]) {
      assert.ok(Math.abs(one[i]!.logprob - other.logprob) < 1e-5, `request ${i}`);
      assert.equal(one[i]!.isGreedy, other.isGreedy);
    }
  }
});

test('acc and acc_norm of a multiple-choice task through the local backend', async () => {
  // Single tokens of different character lengths: raw and per-character argmaxes can differ.
  const choices = ['no', 'yes', 'broken'];
  const docs = Array.from({ length: 6 }, (_, i) => ({
    q: `Question ${i}: is the lamp ${['on', 'off', 'broken'][i % 3]}?`,
    gold: i % 3,
  }));
  const task = makeTask(
    {
      task: 'lamp',
      doc_to_text: '{{ q }}\nAnswer:',
      doc_to_choice: choices,
      doc_to_target: 'gold',
      output_type: 'multiple_choice',
      metric_list: [{ metric: 'acc' }, { metric: 'acc_norm' }],
    },
    docs,
  );
  const res = await evaluateTask(task, new LocalBackend(lm, { batchSize: 4 }));
  let differ = 0;
  let accSum = 0;
  let normSum = 0;
  for (const [i, d] of docs.entries()) {
    const lls: number[] = [];
    for (const c of choices) lls.push((await reference(`${d.q}\nAnswer:`, ` ${c}`)).logprob);
    const argmax = (xs: number[]) => xs.indexOf(Math.max(...xs));
    const pred = argmax(lls);
    const predNorm = argmax(lls.map((l, j) => l / choices[j]!.length));
    if (pred !== predNorm) differ++;
    const e = res.examples[i]!;
    e.lls!.forEach((l, j) => {
      assert.ok(Math.abs(l - lls[j]!) < 1e-3, `doc ${i} choice ${j}`);
    });
    assert.equal(e.metrics.acc, Number(pred === d.gold), `acc of doc ${i}`);
    assert.equal(e.metrics.acc_norm, Number(predNorm === d.gold), `acc_norm of doc ${i}`);
    assert.equal(e.prediction, choices[pred]);
    accSum += Number(pred === d.gold);
    normSum += Number(predNorm === d.gold);
  }
  assert.ok(differ > 0, 'length normalisation changes at least one choice, so acc_norm is tested');
  assert.equal(res.metrics.acc, accSum / docs.length);
  assert.equal(res.metrics.acc_norm, normSum / docs.length);
});
