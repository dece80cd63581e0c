// generate() end to end with a real tokenizer: stop strings (also split across tokens) are
// never returned, the onText deltas of each row concatenate to its final text, onToken sees
// every returned token with its log-prob, and top_logprobs are the sorted top-k of the
// model's next-token distribution (checked against a cache-free recomputation).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TokenEvent } from '../../src/models/decoding.ts';
import { type GenerateOptions, generate, lastLogits } from '../../src/models/generate.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { logSoftmaxRow, topLogprobs } from '../../src/models/sampling.ts';
import { TextStream } from '../../src/models/text-stream.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../../src/models/tiny.ts';

const texts = Array.from(
  { length: 120 },
  (_, i) =>
    `Story ${i}: the ${['red', 'blue', 'old'][i % 3]} boat sails to port ${i % 11}, then home.`,
);
const { tokenizer } = trainTinyTokenizer(texts, 360);
const spec = tinyLlamaConfig({
  vocabSize: 360,
  eosTokenId: tokenizer.eos!.id,
  padTokenId: tokenizer.pad!.id,
  maxPositions: 96,
  shape: {
    hiddenSize: 48,
    intermediateSize: 96,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 12,
    // Peaked logits: long, varied greedy continuations.
    initializerRange: 0.25,
  },
});
const lm = CausalLM.random(spec, 21, tokenizer);
const prompts = ['Story 4: the', 'then home', 'the old boat', 'port 7'];
const free: GenerateOptions = { max_new_tokens: 30, stop_token_ids: [] };

/** generate() with every streamed delta and token event recorded per row. */
async function streamed(ps: string[], opts: GenerateOptions) {
  const deltas: string[][] = ps.map(() => []);
  const events: TokenEvent[][] = ps.map(() => []);
  const res = await generate(lm, ps, {
    ...opts,
    onText: (row, d) => deltas[row]!.push(d),
    onToken: (row, ev) => events[row]!.push(ev),
  });
  return { res, deltas, events };
}

/** A stop string that first occurs across the boundary of tokens j and j+1 (j ≥ 1). */
function boundaryStop(tokens: number[], text: string): { stop: string; at: number } | null {
  const pieces = tokens.map((t) => tokenizer.decode([t], { skipSpecialTokens: true }));
  let at = 0;
  for (let j = 0; j + 1 < pieces.length; j++) {
    at += pieces[j]!.length;
    const a = pieces[j]!;
    const b = pieces[j + 1]!;
    if (j === 0 || a.length === 0 || b.length === 0) continue;
    const stop = a.slice(-2) + b.slice(0, 1);
    if (text.indexOf(stop) === at - Math.min(2, a.length)) return { stop, at: text.indexOf(stop) };
  }
  return null;
}

test('onText deltas concatenate to the final text of each row; onToken sees every token', async () => {
  const { res, deltas, events } = await streamed(prompts, free);
  res.forEach((r, i) => {
    assert.ok(r.text.length > 10, `row ${i} produced text: ${JSON.stringify(r.text)}`);
    assert.equal(deltas[i]!.join(''), r.text, `row ${i}`);
    // A random model emits stray bytes (shown as U+FFFD once known to be invalid); a delta
    // never ends on one before the end, since it might still become part of a character.
    assert.ok(
      deltas[i]!.every((d) => d.length > 0),
      'no empty delta',
    );
    assert.ok(
      deltas[i]!.slice(0, -1).every((d) => !d.endsWith('\ufffd')),
      'no delta ends in a possibly partial character',
    );
    assert.deepEqual(
      events[i]!.map((e) => e.token),
      r.tokens,
    );
    assert.deepEqual(
      events[i]!.map((e) => e.logprob),
      r.logprobs,
    );
    assert.equal(r.text, tokenizer.decode(r.tokens, { skipSpecialTokens: true }));
  });
});

test('a stop string split across tokens is never returned, nor streamed', async () => {
  const [base] = await generate(lm, [prompts[0]!], free);
  const found = boundaryStop(base!.tokens, base!.text);
  assert.ok(found, `a boundary-spanning stop string exists in ${JSON.stringify(base!.text)}`);
  // Also a longer one covering three tokens (the held-back prefix grows over two steps).
  const pieces = base!.tokens.map((t) => tokenizer.decode([t], { skipSpecialTokens: true }));
  const { res, deltas, events } = await streamed([prompts[0]!, prompts[1]!], {
    ...free,
    stop: [found!.stop],
  });
  const r = res[0]!;
  assert.equal(r.text, base!.text.slice(0, found!.at));
  assert.equal(r.finishReason, 'stop');
  assert.ok(!r.text.includes(found!.stop));
  assert.equal(deltas[0]!.join(''), r.text, 'the streamed text stops before the stop string too');
  // Generation stopped at the token completing the stop string (it is still returned as a token).
  const upTo = pieces.findIndex((_, k) =>
    pieces
      .slice(0, k + 1)
      .join('')
      .includes(found!.stop),
  );
  assert.deepEqual(r.tokens, base!.tokens.slice(0, upTo + 1));
  assert.equal(events[0]!.length, upTo + 1);
  // The other row in the batch is unaffected unless it meets the stop string itself.
  const [other] = await generate(lm, [prompts[1]!], { ...free, stop: [found!.stop] });
  assert.equal(res[1]!.text, other!.text);

  const three = pieces.findIndex(
    (p, k) => k > 0 && p.length > 0 && (pieces[k + 1]?.length ?? 0) > 0,
  );
  const long =
    pieces[three]!.slice(-1) + pieces[three + 1]! + (pieces[three + 2] ?? '').slice(0, 1);
  const first = base!.text.indexOf(long);
  const cut = await streamed([prompts[0]!], { ...free, stop: [long, 'zzz-never'] });
  assert.equal(cut.res[0]!.text, base!.text.slice(0, first));
  assert.equal(cut.deltas[0]!.join(''), cut.res[0]!.text);
});

test('top_logprobs through generate(): sorted, the top-k of the recomputed distribution, chosen token included', async () => {
  for (const opts of [
    { ...free, max_new_tokens: 8, top_logprobs: 5 },
    { ...free, max_new_tokens: 8, top_logprobs: 5, temperature: 1.5, seed: 3 },
  ]) {
    const [r] = await generate(lm, [prompts[2]!], opts);
    const top = r!.topLogprobs!;
    assert.equal(top.length, r!.tokens.length);
    const seq = tokenizer.encode(prompts[2]!);
    let seenOutside = false;
    for (const [k, t] of r!.tokens.entries()) {
      const entries = top[k]!;
      assert.equal(entries.length, 5);
      for (let j = 1; j < entries.length; j++)
        assert.ok(entries[j - 1]!.logprob >= entries[j]!.logprob, 'sorted, most likely first');
      const want = topLogprobs(logSoftmaxRow(await lastLogits(lm, seq)), 5);
      assert.deepEqual(
        entries.map((e) => e.token),
        want.map((e) => e.token),
      );
      for (const [j, e] of entries.entries())
        assert.ok(Math.abs(e.logprob - want[j]!.logprob) < 1e-4);
      const mine = entries.find((e) => e.token === t);
      if (mine) assert.ok(Math.abs(mine.logprob - r!.logprobs[k]!) < 1e-9, 'same log-prob');
      else {
        seenOutside = true;
        assert.ok(r!.logprobs[k]! <= entries.at(-1)!.logprob, 'outside the top k: less likely');
      }
      if (opts.temperature === undefined) assert.equal(entries[0]!.token, t, 'greedy = top 1');
      seq.push(t);
    }
    if (opts.temperature === undefined) assert.equal(seenOutside, false);
  }
});

test('TextStream: characters split over byte tokens are streamed whole; stop prefixes are held back', () => {
  // The tokenizer saw no non-ASCII text, so these characters are 2-4 byte-level tokens each.
  const text = 'naïve 日本語 🙂 then home.';
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  assert.ok(ids.length > text.length, 'multi-byte characters span several tokens');
  const s = new TextStream(tokenizer);
  const deltas = ids.map((t) => s.push(t));
  deltas.push(s.finish());
  assert.equal(deltas.join(''), text);
  assert.ok(
    deltas.every((d) => !d.includes('\ufffd')),
    'never a partial character',
  );
  // With a stop string, a delta never ends in a prefix of it, and the stop is cut.
  const st = new TextStream(tokenizer, { stop: ['本語 🙂'] });
  const parts: string[] = [];
  for (const t of ids) {
    const d = st.push(t);
    parts.push(d);
    const shown = parts.join('');
    for (const prefix of ['本', '本語', '本語 '])
      assert.ok(!shown.endsWith(prefix), `the possible stop prefix '${prefix}' is held back`);
    if (st.stopped) break;
  }
  parts.push(st.finish());
  assert.equal(st.stopped, true);
  assert.equal(parts.join(''), 'naïve 日');
});
