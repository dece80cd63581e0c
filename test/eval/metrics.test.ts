import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  bootstrapMean,
  exactMatch,
  maxOverReferences,
  normalizeAnswer,
  pairedBootstrap,
  rougeLStemmed,
  round4,
  scoreMultipleChoice,
  tokenF1,
} from '../../src/eval/metrics.ts';
import { noShared, sharedData } from '../helpers/shared.ts';

test('acc and acc_norm on a hand-computed example', () => {
  // Choice lengths 1, 10, 4 characters; raw log-likelihoods favour the short first choice,
  // per-character ones favour the long second choice.
  const choices = ['a', 'bbbbbbbbbb', 'cccc'];
  const lls = [-2, -5, -6];
  // acc: argmax(-2,-5,-6) = 0. acc_norm: argmax(-2/1, -5/10, -6/4) = argmax(-2, -0.5, -1.5) = 1.
  const s = scoreMultipleChoice(lls, choices, 1);
  assert.equal(s.pred, 0);
  assert.equal(s.pred_norm, 1);
  assert.equal(s.acc, 0);
  assert.equal(s.acc_norm, 1);
  // Characters and bytes differ for non-ASCII choices: 'é' is 1 character but 2 UTF-8 bytes.
  // Per character: -1.5/1 = -1.5 vs -2.8/2 = -1.4, so choice 1.
  // Per byte: -1.5/2 = -0.75 vs -2.8/2 = -1.4, so choice 0.
  const w = scoreMultipleChoice([-1.5, -2.8], ['é', 'xy'], 1);
  assert.equal(w.acc, 0);
  assert.equal(w.acc_norm, 1);
  assert.equal(w.acc_bytes, 0);
});

test('Super-NI exact match and ROUGE-L equal the official script per example and aggregated', {
  skip: noShared,
}, () => {
  const rows = readFileSync(sharedData('natural-instructions', 'eval_fixture.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const last = rows.pop() as {
    aggregate: { exact_match: number; rougeL: number };
    grouped_by_task: Record<string, number>;
  };
  assert.equal(rows.length, 131);
  const em: number[] = [];
  const rl: number[] = [];
  const byTask = new Map<string, { em: number[]; rl: number[] }>();
  for (const r of rows) {
    const e = maxOverReferences(exactMatch, r.prediction, r.references);
    const g = maxOverReferences(rougeLStemmed, r.prediction, r.references);
    assert.equal(e, r.exact_match, `exact_match ${r.id} ${JSON.stringify(r.prediction)}`);
    assert.equal(g, r.rougeL, `rougeL ${r.id} ${JSON.stringify(r.prediction)}`);
    em.push(Number(e));
    rl.push(g);
    const t = byTask.get(r.task) ?? { em: [], rl: [] };
    byTask.set(r.task, t);
    t.em.push(Number(e));
    t.rl.push(g);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.equal(round4(100 * mean(em)), last.aggregate.exact_match);
  assert.equal(round4(100 * mean(rl)), last.aggregate.rougeL);
  for (const [task, t] of byTask) {
    assert.equal(round4(100 * mean(t.em)), last.grouped_by_task[`exact_match_for_${task}`]);
    assert.equal(round4(100 * mean(t.rl)), last.grouped_by_task[`rougeL_for_${task}`]);
  }
});

test('normalisation keeps articles; token F1', () => {
  assert.equal(normalizeAnswer('  The  Cat,\u00a0sat! '), 'the cat sat');
  assert.equal(tokenF1('the cat sat', 'a cat sat down'), (2 * (2 / 3) * (2 / 4)) / (2 / 3 + 2 / 4));
  assert.equal(tokenF1('', ''), 1);
  assert.equal(tokenF1('x', ''), 0);
});

test('bootstrap intervals are deterministic for a seed and contain the mean', () => {
  const xs = Array.from({ length: 200 }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const a = bootstrapMean(xs, { seed: 4 });
  const b = bootstrapMean(xs, { seed: 4 });
  assert.deepEqual(a, b);
  assert.ok(a.low <= a.mean && a.mean <= a.high);
  assert.ok(a.high - a.low > 0.05 && a.high - a.low < 0.2);
  const d = pairedBootstrap(
    xs.map((x) => 1 - x),
    xs,
    { seed: 1 },
  );
  assert.ok(
    d.low > 0.1 && d.mean > 0.3,
    'a clearly better paired system has an interval above zero',
  );
});
