// Rollouts: seeded sampling from the current weights (same seed → same completions, another
// seed → others), EOS appended when sampled, targets only on completion tokens, and the
// token log-prob pass agreeing with the decoder's own log-probs at temperature 1.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IGNORE_INDEX } from '../../src/models/graphs.ts';
import { CausalLM } from '../../src/models/lm.ts';
import {
  completionMetrics,
  rolloutFeeds,
  rolloutRow,
  sampleRollouts,
  TokenLogpRunner,
} from '../../src/train/rollout.ts';
import { eos, smallSpec, tokenizer } from './tiny.ts';

const lm = CausalLM.random(smallSpec(64), 3, tokenizer);
const prompts = ['Q1: what colour?\nAnswer:', 'Q2: what colour?\nAnswer:'].map((p) =>
  tokenizer.encode(p, { addSpecialTokens: false }),
);
const opts = { num_generations: 3, max_completion_length: 12, temperature: 1, eosId: eos };

test('rollouts are a function of the seed; rows of a prompt are consecutive', async () => {
  const a = await sampleRollouts(lm, prompts, { ...opts, seed: '7/rollout/0' });
  const b = await sampleRollouts(lm, prompts, { ...opts, seed: '7/rollout/0', batch_size: 2 });
  const c = await sampleRollouts(lm, prompts, { ...opts, seed: '7/rollout/1' });
  assert.equal(a.length, 6);
  assert.deepEqual(
    a.map((r) => r.prompt),
    [0, 0, 0, 1, 1, 1],
  );
  assert.deepEqual(
    a.map((r) => r.completion),
    b.map((r) => r.completion),
  );
  assert.notDeepEqual(
    a.map((r) => r.completion),
    c.map((r) => r.completion),
  );
  for (const r of a) {
    assert.equal(r.eos, r.completion.at(-1) === eos);
    assert.ok(r.completion.length <= opts.max_completion_length + 1);
    if (!r.eos) assert.equal(r.completion.length, opts.max_completion_length);
  }
});

test('a sampled stop id ends the row and is appended; rows that never stop are cut', async () => {
  // Greedy decoding is deterministic, so taking its third token as the stop id must end every
  // row of that prompt right there, with the stop id as the completion's last token.
  const g = await sampleRollouts(lm, prompts.slice(0, 1), { ...opts, temperature: 0, seed: 'g' });
  const c = g[0]!.completion;
  assert.equal(c.length, opts.max_completion_length);
  const stop = c[2]!;
  const k = c.indexOf(stop);
  const s = await sampleRollouts(lm, prompts.slice(0, 1), {
    ...opts,
    temperature: 0,
    seed: 'g',
    eosId: stop,
  });
  for (const r of s) {
    assert.equal(r.eos, true);
    assert.deepEqual(r.completion, c.slice(0, k + 1));
  }
});

test('rollout rows: targets on completion tokens only (EOS included), none on padding', () => {
  const r = rolloutRow({ promptIds: [5, 6, 7], completion: [8, 9, eos] });
  assert.deepEqual(r.targets, [IGNORE_INDEX, IGNORE_INDEX, 8, 9, eos, IGNORE_INDEX]);
  const masked = rolloutRow({ promptIds: [5, 6, 7], completion: [8, 9] }, false);
  assert.ok(masked.targets.every((t) => t === IGNORE_INDEX));
  const f = rolloutFeeds([r, masked], 0, 64);
  const tg = f.feeds.targets!.data as BigInt64Array;
  for (let i = 6; i < f.T; i++) assert.equal(tg[i], BigInt(IGNORE_INDEX));
  assert.throws(() => rolloutFeeds([r], 0, 4), /max_length/);
});

test('token log-probs of the training-graph pass match the decoder log-probs (T = 1)', async () => {
  const rs = await sampleRollouts(lm, prompts, { ...opts, seed: 'lp' });
  const rows = rs.map((r) => rolloutRow(r));
  const { feeds, T } = rolloutFeeds(rows, 0, 64);
  const runner = new TokenLogpRunner(lm.spec, () => lm.allWeights(), { temperature: 1 });
  const lp = await runner.run(feeds);
  await runner.release();
  rs.forEach((r, b) => {
    const P = r.promptIds.length;
    r.samplerLogprobs.forEach((s, j) => {
      assert.ok(Math.abs(lp[b * T + P - 1 + j]! - s) < 1e-4, `row ${b} token ${j}`);
    });
    // No log-prob outside the completion.
    for (let t = 0; t < P - 1; t++) assert.equal(lp[b * T + t], 0);
  });
  const m = completionMetrics(rs);
  assert.equal(m['completions/clipped_ratio'], rs.filter((r) => !r.eos).length / rs.length);
});
