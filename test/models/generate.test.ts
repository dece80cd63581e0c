import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseHfConfig } from '../../src/models/config.ts';
import { generate, lastLogits } from '../../src/models/generate.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { argmax, sampleToken } from '../../src/models/sampling.ts';
import { Rng } from '../../src/util/rng.ts';

function tinySpec(extra: Record<string, unknown> = {}) {
  return parseHfConfig({
    model_type: 'llama',
    vocab_size: 61,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    initializer_range: 0.3,
    ...extra,
  });
}

const prompts = [[5, 9, 2], [7, 1, 1, 4, 8, 30, 2], [12], [40, 41, 42, 43]];

for (const family of ['llama', 'qwen2'] as const) {
  test(`${family}: KV-cache decoding equals full recomputation, step by step`, async () => {
    const lm = CausalLM.random(tinySpec({ model_type: family }), 1);
    const [r] = await generate(lm, [prompts[1]!], { max_new_tokens: 10, stop_token_ids: [] });
    const seq = [...prompts[1]!];
    for (const t of r!.tokens) {
      const logits = await lastLogits(lm, seq);
      assert.equal(argmax(logits), t);
      seq.push(t);
    }
    assert.equal(r!.tokens.length, 10);
    assert.equal(r!.finishReason, 'length');
  });
}

test('batched greedy equals unbatched greedy token for token (left padding)', async () => {
  const lm = CausalLM.random(tinySpec(), 2);
  const batched = await generate(lm, prompts, { max_new_tokens: 12, stop_token_ids: [] });
  for (let i = 0; i < prompts.length; i++) {
    const [single] = await generate(lm, [prompts[i]!], { max_new_tokens: 12, stop_token_ids: [] });
    assert.deepEqual(batched[i]!.tokens, single!.tokens, `prompt ${i}`);
    for (let k = 0; k < single!.logprobs.length; k++)
      assert.ok(Math.abs(batched[i]!.logprobs[k]! - single!.logprobs[k]!) < 1e-4);
  }
});

test('rows stop independently on stop tokens; sampling is deterministic for a seed', async () => {
  const lm = CausalLM.random(tinySpec(), 3);
  const free = await generate(lm, prompts, { max_new_tokens: 8, stop_token_ids: [] });
  const stopAt = free[0]!.tokens[2]!;
  const cut = await generate(lm, prompts, { max_new_tokens: 8, stop_token_ids: [stopAt] });
  assert.deepEqual(cut[0]!.tokens, free[0]!.tokens.slice(0, free[0]!.tokens.indexOf(stopAt)));
  assert.equal(cut[0]!.finishReason, 'stop');
  const a = await generate(lm, prompts, {
    max_new_tokens: 8,
    temperature: 1,
    top_p: 0.9,
    seed: 5,
    stop_token_ids: [],
  });
  const b = await generate(lm, prompts, {
    max_new_tokens: 8,
    temperature: 1,
    top_p: 0.9,
    seed: 5,
    stop_token_ids: [],
  });
  assert.deepEqual(
    a.map((x) => x.tokens),
    b.map((x) => x.tokens),
  );
});

test('sampling controls on hand-made logits', () => {
  const rng = new Rng(1);
  const logits = () => Float32Array.from([1, 3, 2, -1]);
  assert.equal(sampleToken(logits(), {}, rng), 1);
  // Repetition penalty 4 on token 1: 3/4 = 0.75 < 1 and < 2, so token 2 wins.
  assert.equal(sampleToken(logits(), { repetition_penalty: 4 }, rng, [1]), 2);
  // Negative logits are multiplied: -1 * 4 = -4.
  const l = logits();
  sampleToken(l, { repetition_penalty: 4 }, rng, [3]);
  assert.equal(l[3], -4);
  // top_k = 1 is greedy whatever the temperature.
  for (let i = 0; i < 20; i++)
    assert.equal(sampleToken(logits(), { temperature: 5, top_k: 1 }, rng), 1);
  // top_p small keeps only the most likely token.
  for (let i = 0; i < 20; i++)
    assert.equal(sampleToken(logits(), { temperature: 1, top_p: 0.1 }, rng), 1);
  // With temperature, frequencies follow softmax(logits / T).
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[sampleToken(logits(), { temperature: 1 }, rng)]!++;
  const z = [1, 3, 2, -1].map(Math.exp);
  const tot = z.reduce((a, b) => a + b);
  for (const [i, c] of counts.entries()) {
    assert.ok(
      Math.abs(c / 20000 - z[i]! / tot) < 0.015,
      `token ${i}: ${c / 20000} vs ${z[i]! / tot}`,
    );
  }
});

test('step-level batching: sequences joining and leaving mid-run decode like generate()', async () => {
  const { BatchDecoder } = await import('../../src/models/batch-decoder.ts');
  const lm = CausalLM.random(tinySpec(), 4);
  const want = await Promise.all(
    prompts.map(
      async (p) => (await generate(lm, [p], { max_new_tokens: 7, stop_token_ids: [] }))[0]!.tokens,
    ),
  );
  const dec = new BatchDecoder(lm, 8);
  const got: number[][] = prompts.map(() => []);
  const opts = (i: number) => ({
    maxNewTokens: 7 - (i === 2 ? 4 : 0),
    stopTokenIds: new Set<number>(),
    seed: i,
  });
  await dec.add(prompts[0]!, opts(0), (t) => void got[0]!.push(t.token));
  await dec.step();
  await dec.add(prompts[1]!, opts(1), (t) => void got[1]!.push(t.token));
  await dec.add(prompts[2]!, opts(2), (t) => void got[2]!.push(t.token));
  await dec.step();
  await dec.step();
  await dec.add(prompts[3]!, opts(3), (t) => void got[3]!.push(t.token));
  for (let i = 0; i < 12 && dec.size > 0; i++) await dec.step();
  assert.equal(dec.size, 0);
  assert.deepEqual(got[0], want[0]);
  assert.deepEqual(got[1], want[1]);
  assert.deepEqual(got[2], want[2]!.slice(0, 3), 'a shorter sequence leaves early');
  assert.deepEqual(got[3], want[3]);
});
