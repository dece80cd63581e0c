// lm-evaluation-harness's tokenisation rules for log-likelihoods. No Python `tokenizers` package
// is available here (no PyPI; Debian has no python3-tokenizers), so the expected ids are lm-eval's
// rule (_encode_pair, get_rolling_token_windows + make_disjoint_window) applied in the test to
// our tokenizer, which is checked against HF tokenizers elsewhere; the rolling windows are also
// checked on a hand-worked example.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodePair, rollingWindows, splitPair } from '../../src/eval/backend.ts';
import { LocalBackend } from '../../src/eval/local.ts';
import { scoreMultipleChoice } from '../../src/eval/metrics.ts';
import { lastLogits } from '../../src/models/generate.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../../src/models/tiny.ts';
import { ConfigError } from '../../src/util/errors.ts';

const corpus = Array.from(
  { length: 40 },
  (_, i) =>
    `Question ${i}: is the lamp ${['on', 'off', 'broken'][i % 3]}? Answer: ${['yes', 'no'][i % 2]}.`,
);
const { tokenizer } = trainTinyTokenizer(corpus, 360);
const encode = (t: string) => tokenizer.encode(t, { addSpecialTokens: false });
const spec = tinyLlamaConfig({
  vocabSize: 360,
  eosTokenId: tokenizer.eos!.id,
  padTokenId: tokenizer.pad!.id,
  maxPositions: 16,
  shape: {
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 16,
    initializerRange: 0.5,
  },
});
const lm = CausalLM.random(spec, 11, tokenizer);
const prefix = tokenizer.bos?.id ?? tokenizer.eos!.id;

/** Sum of log p(ids[t] | ids[<t]) for t in [from, ids.length), from the decode graph. */
async function reference(ids: number[], from: number) {
  let logprob = 0;
  let isGreedy = true;
  for (let t = from; t < ids.length; t++) {
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

/** lm-eval's HFLM._encode_pair, written out from its source. */
function lmEvalEncodePair(context: string, continuation: string) {
  const nSpaces =
    context.length -
    context.replace(
      /[\t\n\v\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/,
      '',
    ).length;
  if (nSpaces > 0) {
    continuation = context.slice(-nSpaces) + continuation;
    context = context.slice(0, -nSpaces);
  }
  const whole = encode(context + continuation);
  const ctx = encode(context);
  return { context: ctx, continuation: whole.slice(ctx.length) };
}

// Contexts cut inside a word, so a merged token crosses the boundary.
const requests = [
  { context: 'Question 3: is the la', continuation: 'mp on? Answer: yes' },
  { context: 'Question 7: is the lamp of', continuation: 'f? Answer: no.' },
  { context: 'Question 1: is the lamp broken? Answ', continuation: 'er: no' },
  { context: 'Question 2: is the lamp on? Answer:\u001c', continuation: 'yes' },
  { context: 'Question 2: is the lamp on? Answer:\ufeff', continuation: 'yes' },
  { context: 'Question 4: is the lamp on? Answer: ', continuation: 'yes.' },
];

test('the pair is split where lm-eval splits it, and that differs from encoding separately', () => {
  let crossing = 0;
  for (const r of requests) {
    const got = encodePair(encode, r.context, r.continuation, prefix);
    const want = lmEvalEncodePair(r.context, r.continuation);
    assert.deepEqual(got, want, JSON.stringify(r));
    const [c, k] = splitPair(r.context, r.continuation);
    if (
      JSON.stringify([...encode(c), ...encode(k)]) !==
      JSON.stringify([...got.context, ...got.continuation])
    )
      crossing++;
  }
  assert.ok(crossing >= 2, `boundary-crossing requests: ${crossing}`);
  // Python's rstrip: U+001C moves to the continuation, U+FEFF (JS \s) stays in the context.
  assert.deepEqual(splitPair('a:\u001c', 'b'), ['a:', '\u001cb']);
  assert.deepEqual(splitPair('a:\ufeff', 'b'), ['a:\ufeff', 'b']);
  // An empty context is the prefix token alone.
  assert.deepEqual(encodePair(encode, '', 'yes', prefix), {
    context: [prefix],
    continuation: encode('yes'),
  });
  assert.throws(() => encodePair(encode, '', 'yes', null), ConfigError);
});

test('local log-likelihoods score the continuation ids of lm-eval split', async () => {
  const got = await new LocalBackend(lm, { batchSize: 3 }).loglikelihood([
    ...requests,
    { context: '', continuation: 'Question 5' },
  ]);
  const all = [...requests, { context: '', continuation: 'Question 5' }];
  for (const [i, r] of all.entries()) {
    const p =
      r.context === ''
        ? { context: [prefix], continuation: encode(r.continuation) }
        : lmEvalEncodePair(r.context, r.continuation);
    const ids = [...p.context, ...p.continuation].slice(-spec.maxPositions - 1);
    const want = await reference(ids, ids.length - p.continuation.length);
    assert.ok(
      Math.abs(got[i]!.logprob - want.logprob) < 1e-4 * Math.max(1, Math.abs(want.logprob)),
      `request ${i}: ${got[i]!.logprob} vs ${want.logprob}`,
    );
    assert.equal(got[i]!.isGreedy, want.isGreedy, `request ${i}`);
  }
});

test('rolling windows follow get_rolling_token_windows + make_disjoint_window', () => {
  // Worked by hand from lm_eval/utils.py with max_seq_len 4, context_len 1.
  assert.deepEqual(rollingWindows([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], -1, 4), [
    { context: [-1], continuation: [1, 2, 3, 4] },
    { context: [4], continuation: [5, 6, 7, 8] },
    { context: [6, 7, 8], continuation: [9, 10] },
  ]);
  assert.deepEqual(rollingWindows([1, 2], -1, 4), [{ context: [-1], continuation: [1, 2] }]);
  assert.deepEqual(rollingWindows([], -1, 4), []);
  assert.throws(() => rollingWindows([1], -1, 0), RangeError);
});

test('loglikelihood_rolling sums every token once over windows of the model context', async () => {
  const texts = ['Question 3: is the lamp on?', corpus.slice(0, 4).join(' ')];
  const tokens = texts.map(encode);
  assert.ok(tokens[1]!.length > 2 * spec.maxPositions, 'the long text needs three windows');
  const got = await new LocalBackend(lm).loglikelihoodRolling(texts);
  for (const [i, toks] of tokens.entries()) {
    // Each token scored after at most maxPositions preceding tokens (the prefix for the first
    // window), per lm-eval's windows: token j of window w sees window w's context + earlier tokens.
    let want = 0;
    for (const w of rollingWindows(toks, prefix, spec.maxPositions)) {
      const ids = [...w.context, ...w.continuation];
      assert.ok(ids.length <= spec.maxPositions + 1);
      want += (await reference(ids, w.context.length)).logprob;
    }
    assert.ok(Math.abs(got[i]! - want) < 1e-4 * Math.abs(want), `text ${i}: ${got[i]} vs ${want}`);
  }
  // One window: the whole text after the prefix token.
  const one = await reference([prefix, ...tokens[0]!], 1);
  assert.ok(Math.abs(got[0]! - one.logprob) < 1e-4 * Math.abs(one.logprob));
});

test('acc_norm divides by Python len (code points), acc_bytes by UTF-8 bytes', () => {
  // '😀' is one code point, two UTF-16 units and four UTF-8 bytes; 'ab' is two of each.
  // Per code point: -1.5/1 = -1.5 vs -2.8/2 = -1.4 -> choice 1. Per UTF-16 unit it would be 0.
  // Per byte: -1.5/4 = -0.375 vs -1.4 -> choice 0.
  const s = scoreMultipleChoice([-1.5, -2.8], ['😀', 'ab'], 1);
  assert.equal(s.acc_norm, 1);
  assert.equal(s.acc_bytes, 0);
});
