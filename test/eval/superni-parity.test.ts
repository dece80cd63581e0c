import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  exactMatch,
  maxOverReferences,
  normalizeAnswer,
  round4,
  superNiAggregate,
  superNiGroupedMetrics,
  superNiMetrics,
} from '../../src/eval/metrics.ts';
import { fixture, sharedData } from '../helpers/shared.ts';

// Made by scripts/fixtures/natinst_metrics_expected.py (the official evaluation.py's rules).
const want = JSON.parse(readFileSync(fixture('natinst', 'metrics_expected.json'), 'utf8')) as {
  examples: { prediction: string; references: string[]; exact_match: boolean }[];
  exact_match: number;
  em_aggregates: { indices: number[]; exact_match: number; value: string }[];
  rouge_aggregates: { scores: number[]; rougeL: number; value: string }[];
};

test('exact match equals the official script with every whitespace character around and inside', () => {
  assert.ok(want.examples.length > 130);
  const ems = want.examples.map((e) => {
    const em = maxOverReferences(exactMatch, e.prediction, e.references);
    assert.equal(em, e.exact_match, JSON.stringify(e));
    return em;
  });
  assert.equal(superNiAggregate(ems), want.exact_match);
});

test('aggregates with a 5 at the rounding digit round as Python does', () => {
  const ems = want.examples.map((e) => maxOverReferences(exactMatch, e.prediction, e.references));
  assert.ok(want.em_aggregates.length >= 4 && want.rouge_aggregates.length >= 4);
  for (const a of want.em_aggregates)
    assert.equal(superNiAggregate(a.indices.map((i) => ems[i]!)), a.exact_match, a.value);
  for (const a of want.rouge_aggregates)
    assert.equal(superNiAggregate(a.scores), a.rougeL, a.value);
  assert.equal(round4(0.78125), 0.7812);
});

test('normalize_answer splits on Python whitespace only', () => {
  assert.equal(normalizeAnswer('a\ufeffb'), 'a\ufeffb');
  assert.equal(normalizeAnswer('\u001cA\u001fB\u0085'), 'a b');
  assert.equal(normalizeAnswer('ΟΔΟΣ'), 'οδος'.replace(/σ$/, 'ς'));
});

test('superNiMetrics and superNiGroupedMetrics reproduce the official summary of the shared fixture', () => {
  const rows = readFileSync(sharedData('natural-instructions', 'eval_fixture.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const last = rows.pop() as {
    aggregate: { exact_match: number; rougeL: number };
    grouped_by_task: Record<string, number>;
  };
  const preds = rows.map((r) => r.prediction as string);
  const refs = rows.map((r) => r.references as string[]);
  assert.deepEqual(superNiMetrics(preds, refs), last.aggregate);
  assert.deepEqual(
    superNiGroupedMetrics(
      preds,
      refs,
      rows.map((r) => r.task as string),
    ),
    last.grouped_by_task,
  );
  assert.throws(() => superNiMetrics(preds, refs.slice(1)), RangeError);
  assert.throws(() => superNiGroupedMetrics(preds, refs, []), RangeError);
});
