import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseHfConfig } from '../../src/models/config.ts';
import { Decoder, type Sequence, type TokenEvent } from '../../src/models/decoding.ts';
import { generate, lastLogits } from '../../src/models/generate.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { argmax, logSoftmaxRow, sampleToken } from '../../src/models/sampling.ts';
import { ConfigError } from '../../src/util/errors.ts';
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
  const lm = CausalLM.random(tinySpec(), 4);
  const want = await Promise.all(
    prompts.map(
      async (p) => (await generate(lm, [p], { max_new_tokens: 7, stop_token_ids: [] }))[0]!.tokens,
    ),
  );
  const dec = new Decoder(lm, { maxBatch: 8 });
  const add = (i: number) =>
    dec.add({ prompt: prompts[i]!, max_new_tokens: i === 2 ? 3 : 7, stop_token_ids: [] });
  const got = new Map<Sequence, number[]>();
  const finished = new Map<Sequence, number>();
  const run = async () => {
    for (const ev of await dec.step()) {
      if (ev.token >= 0) got.set(ev.seq, [...(got.get(ev.seq) ?? []), ev.token]);
      if (ev.finishReason !== null) finished.set(ev.seq, (finished.get(ev.seq) ?? 0) + 1);
    }
  };
  const s0 = add(0);
  await run();
  const s1 = add(1);
  const s2 = add(2);
  await run();
  await run();
  const s3 = add(3);
  for (let i = 0; i < 12 && dec.busy; i++) await run();
  assert.equal(dec.busy, false);
  assert.deepEqual(got.get(s0), want[0]);
  assert.deepEqual(got.get(s1), want[1]);
  assert.deepEqual(got.get(s2), want[2]!.slice(0, 3), 'a shorter sequence leaves early');
  assert.deepEqual(got.get(s3), want[3]);
  for (const s of [s0, s1, s2, s3]) assert.equal(finished.get(s), 1, 'one finish event each');
  assert.equal(s2.finishReason, 'length');
});

test('cancel is honoured while queued, during the prefill run and during a decode run', async () => {
  const lm = CausalLM.random(tinySpec(), 5);
  const want = (await generate(lm, [prompts[1]!], { max_new_tokens: 6, stop_token_ids: [] }))[0]!;
  const dec = new Decoder(lm, { maxBatch: 4 });
  const req = (i: number) => ({ prompt: prompts[i]!, max_new_tokens: 6, stop_token_ids: [] });
  const events: TokenEvent[] = [];
  const queued = dec.add(req(0));
  const inPrefill = dec.add(req(2));
  const other = dec.add(req(1));
  dec.cancel(queued);
  // step() takes the joining sequences before its first await: this cancel lands mid-prefill.
  const pending = dec.step();
  dec.cancel(inPrefill);
  events.push(...(await pending));
  const inDecode = dec.add(req(3));
  events.push(...(await dec.step())); // prefills inDecode, decodes `other`
  const next = dec.step();
  dec.cancel(inDecode);
  events.push(...(await next));
  while (dec.busy) events.push(...(await dec.step()));
  const of = (s: Sequence) => events.filter((e) => e.seq === s);
  for (const s of [queued, inPrefill]) {
    assert.equal(s.finishReason, 'cancelled');
    assert.deepEqual(s.tokens, [], 'no token after a cancel');
    assert.deepEqual(
      of(s).map((e) => [e.token, e.finishReason]),
      [[-1, 'cancelled']],
    );
  }
  assert.equal(inDecode.finishReason, 'cancelled');
  assert.equal(inDecode.tokens.length, 1, 'only the prefill token, none from the cancelled run');
  assert.equal(of(inDecode).filter((e) => e.finishReason !== null).length, 1);
  assert.deepEqual(other.tokens, want.tokens, 'the rest of the batch is unaffected');
  assert.equal(of(other).at(-1)!.finishReason, 'length');
  // Cancelling a finished sequence changes nothing.
  dec.cancel(other);
  assert.equal(other.finishReason, 'length');
  assert.deepEqual(await dec.step(), []);
});

test('presence/frequency penalties and logit_bias in generate() equal a hand-run greedy loop', async () => {
  const lm = CausalLM.random(tinySpec(), 6);
  const prompt = [7, 1, 1, 4, 8, 30, 2];
  const n = 16;
  /** Greedy by full recomputation with OpenAI's penalties over generated tokens, and a bias. */
  const byHand = async (presence: number, frequency: number, bias: Record<string, number> = {}) => {
    const seq = [...prompt];
    const counts = new Map<number, number>();
    const out: { tokens: number[]; logprobs: number[] } = { tokens: [], logprobs: [] };
    for (let k = 0; k < n; k++) {
      const raw = await lastLogits(lm, seq);
      const l = Float64Array.from(raw);
      for (const [id, b] of Object.entries(bias)) l[Number(id)]! += b;
      for (const [t, c] of counts) l[t]! -= frequency * c + presence * (c > 0 ? 1 : 0);
      const t = argmax(l);
      out.tokens.push(t);
      out.logprobs.push(logSoftmaxRow(raw)[t]!);
      counts.set(t, (counts.get(t) ?? 0) + 1);
      seq.push(t);
    }
    return out;
  };
  const plain = (await generate(lm, [prompt], { max_new_tokens: n, stop_token_ids: [] }))[0]!;
  const cases: [number, number, Record<string, number>][] = [
    [1.5, 0, {}],
    [0, 0.8, {}],
    [0.4, 0.6, { [String(plain.tokens[0]!)]: -100, '3': 1.5 }],
  ];
  for (const [presence, frequency, bias] of cases) {
    const [r] = await generate(lm, [prompt], {
      max_new_tokens: n,
      stop_token_ids: [],
      presence_penalty: presence,
      frequency_penalty: frequency,
      logit_bias: bias,
    });
    const want = await byHand(presence, frequency, bias);
    assert.deepEqual(r!.tokens, want.tokens, `presence ${presence}, frequency ${frequency}`);
    // Reported log-probs are the model's, before any processor.
    for (const [k, lp] of r!.logprobs.entries()) assert.ok(Math.abs(lp - want.logprobs[k]!) < 1e-4);
    assert.notDeepEqual(r!.tokens, plain.tokens, 'the penalties change the output');
  }
  // The penalties count generated tokens only: token 1 appears twice in the prompt; a bias
  // 3 above its gap to the best token makes it win the first step, which a penalty of
  // 2·2 + 2 = 6 from counting the prompt would undo.
  const first = await lastLogits(lm, prompt);
  const gap = Math.max(...first.filter((_, i) => i !== 1)) - first[1]!;
  const [p0] = await generate(lm, [prompt], {
    max_new_tokens: 1,
    stop_token_ids: [],
    presence_penalty: 2,
    frequency_penalty: 2,
    logit_bias: { '1': gap + 3 },
  });
  assert.deepEqual(p0!.tokens, [1]);
  // A +100 bias makes one token certain even when sampling.
  const [forced] = await generate(lm, [prompt], {
    max_new_tokens: 6,
    stop_token_ids: [],
    temperature: 1,
    seed: 2,
    logit_bias: { '9': 100 },
  });
  assert.deepEqual(forced!.tokens, [9, 9, 9, 9, 9, 9]);
  // Bad values are rejected up front, naming the field.
  await assert.rejects(
    generate(lm, [prompt], { max_new_tokens: 4, logit_bias: { '61': 1 } }),
    (e: unknown) => e instanceof ConfigError && e.field === 'logit_bias.61',
  );
});
