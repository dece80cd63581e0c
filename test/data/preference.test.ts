import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { builtinCollection, DEMO_HELDOUT_CATEGORIES } from '../../src/data/collection/index.ts';
import { collectionPreferences, nearMiss } from '../../src/data/collection/preference.ts';
import { newReadReport, writeRecords } from '../../src/data/io.ts';
import {
  extractPrompt,
  loadPreferences,
  parsePreference,
  preferencePairs,
} from '../../src/data/preference.ts';
import { DataError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-pref-'));
const jsonl = (name: string, rows: unknown[]) => {
  const p = join(dir, name);
  writeFileSync(p, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return p;
};
const u = (content: string) => ({ role: 'user' as const, content });
const a = (content: string) => ({ role: 'assistant' as const, content });

test('explicit pair: K = 2, chosen rank 0, margin kept', () => {
  const e = parsePreference({
    prompt: 'The sky is',
    chosen: ' blue.',
    rejected: ' green.',
    margin: 0.5,
  });
  assert.deepEqual(e, {
    prompt: 'The sky is',
    completions: [' blue.', ' green.'],
    ranks: [0, 1],
    margin: 0.5,
  });
});

test('implicit prompt: common prefix, space moves to the completions (TRL extract_prompt)', () => {
  const e = parsePreference({ chosen: 'The sky is blue.', rejected: 'The sky is green.' });
  assert.equal(e.prompt, 'The sky is');
  assert.deepEqual(e.completions, [' blue.', ' green.']);
});

test('implicit prompt never cuts inside a word', () => {
  // Character LCP is "The sky is b"; cutting there would tokenise "b" + "lue" apart.
  assert.deepEqual(extractPrompt('The sky is blue.', 'The sky is black.'), {
    prompt: 'The sky is',
    chosen: ' blue.',
    rejected: ' black.',
  });
  // One is a prefix of the other: the last shared word goes to both completions.
  assert.deepEqual(extractPrompt('Answer: red', 'Answer: red, maybe'), {
    prompt: 'Answer:',
    chosen: ' red',
    rejected: ' red, maybe',
  });
  // A chat marker is never split: the cut backs off before it.
  const p = extractPrompt('<|user|>hi<|assistant|>yes', '<|user|>hi<|assistant|>no');
  assert.equal(p.prompt, '');
});

test('conversational: implicit prompt from the shared turns, explicit prompt with assistant-only replies', () => {
  const e = parsePreference({
    chosen: [u('2+2?'), a('4')],
    rejected: [u('2+2?'), a('5')],
  });
  assert.deepEqual(e.prompt, [u('2+2?')]);
  assert.deepEqual(e.completions, [[a('4')], [a('5')]]);
  const x = parsePreference({ prompt: [u('2+2?')], chosen: [a('4')], rejected: [a('5')] });
  assert.deepEqual(x.completions, [[a('4')], [a('5')]]);
});

test('ranking: ties share a rank; pairs are every untied pair, better first', () => {
  const e = parsePreference({
    prompt: 'p',
    completions: ['a', 'b', 'c', 'd'],
    ranking: [2, 0, 2, 1],
  });
  assert.deepEqual(e.ranks, [2, 0, 2, 1]);
  assert.deepEqual(preferencePairs(e), [
    { chosen: 1, rejected: 0 },
    { chosen: 3, rejected: 0 },
    { chosen: 1, rejected: 2 },
    { chosen: 1, rejected: 3 },
    { chosen: 3, rejected: 2 },
  ]);
});

const BAD: [string, unknown, RegExp][] = [
  [
    'ranking length',
    { prompt: 'p', completions: ['a', 'b', 'c'], ranking: [0, 1] },
    /ranking.*2 entries but there are 3/,
  ],
  ['identical pair', { prompt: 'p', chosen: ' a', rejected: ' a' }, /rejected.*identical/],
  ['identical implicit pair', { chosen: 'same', rejected: 'same' }, /identical/],
  ['empty completion', { prompt: 'p', chosen: ' a', rejected: '  ' }, /rejected.*empty completion/],
  ['empty implicit completion', { chosen: 'Q: x', rejected: ' \n' }, /empty completion/],
  [
    'empty chat reply',
    { prompt: [u('q')], chosen: [a('')], rejected: [a('b')] },
    /chosen.*empty completion/,
  ],
  [
    'empty ranked completion',
    { prompt: 'p', completions: ['a', ''], ranking: [0, 1] },
    /completions\.1.*empty/,
  ],
  [
    'conversational prompts differ',
    { chosen: [u('2+2?'), a('4')], rejected: [u('2+3?'), a('5')] },
    /rejected.*prompts differ/,
  ],
  [
    'mixed text and messages',
    { prompt: 'q', chosen: [a('4')], rejected: [a('5')] },
    /prompt.*text or both/,
  ],
  ['all tied', { prompt: 'p', completions: ['a', 'b'], ranking: [1, 1] }, /nothing is preferred/],
];

for (const [name, rec, re] of BAD) {
  test(`bad input (${name}): DataError naming file:line and field`, async () => {
    const p = jsonl(`bad-${name.replace(/\W+/g, '-')}.jsonl`, [
      { prompt: 'ok', chosen: ' yes', rejected: ' no' },
      rec,
    ]);
    const kind = 'completions' in (rec as object) ? 'ranking' : 'pair';
    if (kind === 'ranking') {
      // A ranking file: the good record must be a ranking too (the first record fixes the kind).
      writeFileSync(
        p,
        `${JSON.stringify({ prompt: 'ok', completions: ['x', 'y'], ranking: [0, 1] })}\n${JSON.stringify(rec)}\n`,
      );
    }
    await assert.rejects(loadPreferences(p), (e: unknown) => {
      assert.ok(e instanceof DataError, String(e));
      assert.equal(e.file, p);
      assert.equal(e.line, 2);
      assert.match(e.message, re);
      return true;
    });
    // --skip-invalid: counted and listed with file:line; the good record survives.
    const report = newReadReport();
    const got = await loadPreferences(p, { skipInvalid: true, report });
    assert.equal(got.length, 1);
    assert.equal(got[0]!.where, `${p}:1`);
    assert.equal(report.skipped, 1);
    assert.match(
      report.reasons[0]!,
      new RegExp(`${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: .*`),
    );
  });
}

test('Parquet and JSON arrays read through the same readers', async () => {
  const rows = [
    { prompt: 'a', chosen: ' b', rejected: ' c' },
    { prompt: 'd', chosen: ' e', rejected: ' f' },
  ];
  for (const ext of ['parquet', 'json']) {
    const p = join(dir, `pairs.${ext}`);
    await writeRecords(p, rows, { kind: 'preference' });
    const got = await loadPreferences(p);
    assert.deepEqual(
      got.map((g) => g.completions),
      [
        [' b', ' c'],
        [' e', ' f'],
      ],
    );
  }
});

test('collection preferences: chosen is the right answer; rankings right > near-miss > wrong > off-format', () => {
  const c = builtinCollection({ seed: 0 });
  const held = [...DEMO_HELDOUT_CATEGORIES];
  const pairs = collectionPreferences(c, { excludeCategories: held, seed: 3 });
  assert.ok(pairs.length > 100);
  assert.ok(pairs.every((p) => !held.includes(p.category as (typeof held)[number])));
  const capital = c.tasks.find((t) => t.name === 'capital_of')!;
  const rights = new Set(capital.facts.map((f) => ` ${f.y}`));
  const cap = pairs
    .filter((p) => p.task === 'capital_of')
    .map((p) => p.record as { chosen: string; rejected: string });
  assert.ok(cap.length >= capital.facts.length * 2);
  for (const r of cap) {
    assert.ok(rights.has(r.chosen), r.chosen);
    assert.notEqual(r.chosen, r.rejected);
    parsePreference(r); // valid by our own rules
  }
  // Deterministic for a seed, different for another.
  assert.deepEqual(collectionPreferences(c, { excludeCategories: held, seed: 3 }), pairs);
  assert.notDeepEqual(collectionPreferences(c, { excludeCategories: held, seed: 4 }), pairs);

  const ranked = collectionPreferences(c, { categories: held, format: 'ranking', seed: 3 });
  assert.ok(ranked.length > 10);
  for (const { record } of ranked) {
    const r = record as { prompt: string; completions: string[]; ranking: number[] };
    const e = parsePreference(r);
    assert.equal(e.completions.length, 4);
    const byRank = [...r.ranking.keys()]
      .sort((x, y) => r.ranking[x]! - r.ranking[y]!)
      .map((i) => r.completions[i]!);
    assert.ok(r.prompt.endsWith('\nAnswer:'));
    // near-miss differs from the right answer in exactly one character
    const [right, near] = byRank as [string, string];
    assert.equal(right.length, near.length);
    assert.equal([...right].filter((ch, i) => ch !== near[i]).length, 1);
  }
  // train / eval facts are disjoint
  const tr = collectionPreferences(c, { categories: ['geography'], facts: 'train' });
  const ev = collectionPreferences(c, { categories: ['geography'], facts: 'eval' });
  const prompts = new Set(tr.map((x) => x.record.prompt));
  assert.ok(ev.length > 0 && ev.every((x) => !prompts.has(x.record.prompt)));
});

test('nearMiss changes one letter and keeps case', () => {
  const r = new Rng(1);
  for (const w of ['Zarn', 'quib', 'Monday']) {
    const m = nearMiss(w, r);
    assert.equal(m.length, w.length);
    assert.notEqual(m, w);
    assert.equal(m[0] === m[0]!.toUpperCase(), w[0] === w[0]!.toUpperCase());
  }
});
