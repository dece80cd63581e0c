import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { porterStem } from '../../src/data/porter.ts';
import { bruteForceBest, RougeLIndex, rougeL, rougeTokenize } from '../../src/data/rouge.ts';
import { Rng } from '../../src/util/rng.ts';
import { sharedData } from '../helpers/shared.ts';

const jsonl = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

test('P, R, F equal rouge_score exactly on every fixture pair, with and without stemming', () => {
  const rows = jsonl(sharedData('rouge', 'rougeL_pairs.jsonl')) as {
    a: string;
    b: string;
    rougeL_nostem: { p: number; r: number; f: number };
    rougeL_stem: { p: number; r: number; f: number };
  }[];
  assert.equal(rows.length, 619);
  const bad: string[] = [];
  for (const r of rows) {
    for (const [stemmer, want] of [
      [false, r.rougeL_nostem],
      [true, r.rougeL_stem],
    ] as const) {
      const got = rougeL(r.a, r.b, { stemmer });
      if (got.precision !== want.p || got.recall !== want.r || got.fmeasure !== want.f) {
        bad.push(
          `stem=${stemmer} ${JSON.stringify(r.a).slice(0, 60)} | ${JSON.stringify(r.b).slice(0, 60)}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`,
        );
      }
    }
  }
  assert.deepEqual(bad.slice(0, 5), []);
});

test('the fast index makes the same decisions as rouge_score on the Self-Instruct replay', () => {
  const seeds = (
    jsonl(sharedData('self-instruct', 'seed_tasks.jsonl')) as { instruction: string }[]
  ).map((t) => t.instruction);
  const rows = jsonl(sharedData('rouge', 'selfinstruct_filter_decisions.jsonl')) as {
    candidate: string;
    max_rougeL: number;
    kept: boolean;
    most_similar_index: number;
    pool_size: number;
    n_at_max: number;
  }[];
  assert.equal(rows.length, 1500);
  const idx = new RougeLIndex({ threshold: 0.7 });
  for (const s of seeds) idx.add(s);
  let same = 0;
  for (const r of rows) {
    assert.equal(idx.size, r.pool_size);
    const b = idx.best(r.candidate);
    const exceeds = idx.exceeds(r.candidate);
    assert.equal(b.score, r.max_rougeL, r.candidate);
    assert.equal(b.index, r.most_similar_index, r.candidate);
    assert.equal(b.nAtMax, r.n_at_max, r.candidate);
    assert.equal(!exceeds, r.kept, r.candidate);
    same++;
    if (r.kept) idx.add(r.candidate);
  }
  assert.equal(same, 1500);
  assert.equal(idx.size, 743);
});

test('fast and brute-force decisions agree on larger generated sets, with and without stemming', () => {
  const rng = new Rng(99);
  const words =
    'the a of to and give list write explain describe short long story poem summary three five reasons ways steps make makes making made running runs ran happy happily happiness data table code review email'.split(
      ' ',
    );
  const make = () => Array.from({ length: 3 + rng.int(14) }, () => rng.choice(words)).join(' ');
  for (const stemmer of [false, true]) {
    const pool: string[] = [];
    const idx = new RougeLIndex({ threshold: 0.6, stemmer });
    for (let i = 0; i < 400; i++) {
      const c =
        i % 5 === 0 && pool.length > 0 ? `${rng.choice(pool)} ${rng.choice(words)}` : make();
      const bf = bruteForceBest(c, pool, { stemmer });
      const fast = idx.best(c);
      if (pool.length > 0) {
        assert.equal(fast.score, bf.score);
        assert.equal(fast.index, bf.index);
        assert.equal(fast.nAtMax, bf.nAtMax);
      }
      assert.equal(idx.exceeds(c), pool.length > 0 && bf.score > 0.6);
      if (!idx.exceeds(c)) {
        pool.push(c);
        idx.add(c);
      }
    }
    assert.ok(pool.length > 50);
  }
});

test('tokenisation and stemming edge cases', () => {
  assert.deepEqual(rougeTokenize('Café naïve İstanbul 2,000 snake_case'), [
    'caf',
    'na',
    've',
    'i',
    'stanbul',
    '2',
    '000',
    'snake',
    'case',
  ]);
  assert.deepEqual(rougeTokenize('running runs ran generously', { stemmer: true }), [
    'run',
    'run',
    'ran',
    'gener',
  ]);
  const cases: Record<string, string> = {
    caresses: 'caress',
    ponies: 'poni',
    ties: 'tie',
    dying: 'die',
    lying: 'lie',
    news: 'news',
    innings: 'inning',
    proceed: 'proceed',
    agreed: 'agre',
    this: 'thi',
    happy: 'happi',
    enjoy: 'enjoy',
    relational: 'relat',
    conditional: 'condit',
    hopefulness: 'hope',
    electrical: 'electr',
    adjustment: 'adjust',
    generalization: 'gener',
    geology: 'geolog',
    controlling: 'control',
    filing: 'file',
    hoping: 'hope',
  };
  for (const [w, s] of Object.entries(cases)) assert.equal(porterStem(w), s, w);
  assert.equal(rougeL('', 'x').fmeasure, 0);
});
