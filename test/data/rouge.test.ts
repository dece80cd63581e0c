import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { bruteForceBest, RougeLIndex, rougeL, rougeTokenize } from '../../src/data/rouge.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { ifShared, noShared, sharedData } from '../helpers/shared.ts';

const jsonl = <T>(path: string): T[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);

interface PairRow {
  a: string;
  b: string;
  rougeL_nostem: { p: number; r: number; f: number };
  rougeL_stem: { p: number; r: number; f: number };
}
interface DecisionRow {
  candidate: string;
  max_rougeL: number;
  kept: boolean;
  most_similar_index: number;
  pool_size: number;
  n_at_max: number;
}
// rouge_score and Self-Instruct fixtures from ../shared/data; the tests on them skip without it.
const pairs = ifShared(() => jsonl<PairRow>(sharedData('rouge', 'rougeL_pairs.jsonl')), []);
const decisions = ifShared(
  () => jsonl<DecisionRow>(sharedData('rouge', 'selfinstruct_filter_decisions.jsonl')),
  [],
);
const seeds = ifShared(
  () =>
    jsonl<{ instruction: string }>(sharedData('self-instruct', 'seed_tasks.jsonl')).map(
      (t) => t.instruction,
    ),
  [],
);

/** The rule as the README states it, written the slow obvious way. */
const referenceTokens = (text: string) =>
  text
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);

test('only ASCII, U+0130 and U+212A lower-case into [a-z0-9] (what the tokenizer relies on)', () => {
  const found: number[] = [];
  for (let cp = 0x80; cp < 0x110000; cp++) {
    if (cp >= 0xd800 && cp < 0xe000) continue;
    if (/[a-z0-9]/.test(String.fromCodePoint(cp).toLowerCase())) found.push(cp);
  }
  assert.deepEqual(found, [0x130, 0x212a]);
  assert.deepEqual(rougeTokenize('İstanbul xİy KELVIN \u212a5 İİ'), [
    'i',
    'stanbul',
    'xi',
    'y',
    'kelvin',
    'k5',
    'i',
    'i',
  ]);
});

test('rougeTokenize equals the reference rule on fixture texts and random Unicode', {
  skip: noShared,
}, () => {
  for (const r of pairs) {
    assert.deepEqual(rougeTokenize(r.a), referenceTokens(r.a));
    assert.deepEqual(rougeTokenize(r.b), referenceTokens(r.b));
  }
  const rng = new Rng(7);
  const alphabet = [..."aiIkKZ09 _-'.,İ\u212aé漢😀\u0307\u00a0\t\nΣςK"];
  const random = () => Array.from({ length: rng.int(30) }, () => rng.choice(alphabet)).join('');
  for (let k = 0; k < 3000; k++) {
    const s = random();
    assert.deepEqual(rougeTokenize(s), referenceTokens(s), JSON.stringify(s));
    // The index interns tokens from characters with its own scanner: it must see the same
    // tokens, so its score for a pair equals rougeL's.
    const other = rng.float() < 0.5 ? random() : s.toUpperCase();
    const idx = new RougeLIndex();
    idx.add(s);
    assert.equal(idx.best(other).score, rougeL(other, s).fmeasure, JSON.stringify([s, other]));
  }
});

test('P, R, F equal rouge_score bit for bit on every fixture pair, with and without stemming', {
  skip: noShared,
}, () => {
  assert.equal(pairs.length, 619);
  let exact = 0;
  const bad: string[] = [];
  for (const r of pairs) {
    for (const [stemmer, want] of [
      [false, r.rougeL_nostem],
      [true, r.rougeL_stem],
    ] as const) {
      const got = rougeL(r.a, r.b, { stemmer });
      const same = got.precision === want.p && got.recall === want.r && got.fmeasure === want.f;
      // The index scores the same pair through its own tokenizer and LCS kernel.
      const idx = new RougeLIndex({ stemmer });
      idx.add(r.b);
      if (same && idx.best(r.a).score === want.f) exact++;
      else bad.push(`stem=${stemmer} ${JSON.stringify([r.a, r.b]).slice(0, 120)}`);
    }
  }
  assert.deepEqual(bad.slice(0, 5), []);
  assert.equal(exact, 2 * 619);
  assert.ok(pairs.filter((r) => r.rougeL_stem.f !== r.rougeL_nostem.f).length >= 60);
});

test('the index replays the Self-Instruct filter fixture exactly (scores, ties, 0.7 edge cases)', {
  skip: noShared,
}, () => {
  assert.equal(decisions.length, 1500);
  // The fixture's threshold cases are present: exactly 0.7 is kept, one ulp above is rejected.
  assert.equal(decisions.filter((r) => r.max_rougeL === 0.7 && r.kept).length, 5);
  assert.equal(decisions.filter((r) => r.max_rougeL === 0.7000000000000001 && !r.kept).length, 15);
  const idx = new RougeLIndex({ threshold: 0.7 });
  const pool = [...seeds];
  for (const s of seeds) idx.add(s);
  let same = 0;
  decisions.forEach((r, k) => {
    assert.equal(idx.size, r.pool_size);
    const got = idx.best(r.candidate);
    const want = { score: r.max_rougeL, index: r.most_similar_index, nAtMax: r.n_at_max };
    assert.deepEqual(got, want, r.candidate);
    assert.equal(!idx.exceeds(r.candidate), r.kept, r.candidate);
    // The brute force is the reference for the generated-set tests below; check it here too.
    if (k % 4 === 0) assert.deepEqual(bruteForceBest(r.candidate, pool), want, r.candidate);
    same++;
    if (r.kept) {
      assert.equal(idx.add(r.candidate), pool.length);
      pool.push(r.candidate);
    }
  });
  assert.equal(same, 1500);
  assert.equal(idx.size, 743);
});

/** Runs the filter with the index and with brute force side by side; both must agree. */
function replay(texts: readonly string[], threshold: number, stemmer: boolean) {
  const idx = new RougeLIndex({ threshold, stemmer });
  const pool: string[] = [];
  let kept = 0;
  let ties = 0;
  for (const c of texts) {
    const want = bruteForceBest(c, pool, { stemmer });
    const got = idx.best(c);
    const label = `t=${threshold} stem=${stemmer} pool=${pool.length} ${c.slice(0, 80)}`;
    if (pool.length > 0) assert.deepEqual(got, want, label);
    else assert.deepEqual(got, { score: 0, index: -1, nAtMax: 0 });
    const exceeds = pool.length > 0 && want.score > threshold;
    assert.equal(idx.exceeds(c), exceeds, label);
    if (want.nAtMax > 1 && want.score > 0) ties++;
    if (!exceeds) {
      idx.add(c);
      pool.push(c);
      kept++;
    }
  }
  return { kept, ties };
}

test('fast and brute-force decisions agree on generated sets (thresholds, stemming, ties)', () => {
  const rng = new Rng(99);
  const words =
    'the a of to and give list write explain describe short long story poem summary three five reasons ways steps make makes making made running runs ran happy happily happiness data table code review email'.split(
      ' ',
    );
  const make = () => Array.from({ length: 1 + rng.int(16) }, () => rng.choice(words)).join(' ');
  const texts: string[] = [];
  for (let i = 0; i < 300; i++) {
    const roll = rng.float();
    if (roll < 0.3 && texts.length > 0) texts.push(`${rng.choice(texts)} ${rng.choice(words)}`);
    else if (roll < 0.4 && texts.length > 0) texts.push(rng.choice(texts).toUpperCase());
    else if (roll < 0.45) texts.push(rng.choice(['', '...', '漢字', 'THE']));
    else texts.push(make());
  }
  let totalTies = 0;
  for (const stemmer of [false, true]) {
    for (const t of [0.7, 0.5, 2 / 3, 0.3, 0, 1, -0.1]) {
      const { kept, ties } = replay(texts, t, stemmer);
      if (t > 0 && t < 1) assert.ok(kept > 20 && kept < texts.length, `t=${t} kept ${kept}`);
      totalTies += ties;
    }
  }
  assert.ok(totalTies > 100, `ties ${totalTies}`);
});

test('fast and brute force agree on long texts (multi-word bit vectors, 1,000+ tokens)', () => {
  const rng = new Rng(5);
  const vocab = Array.from({ length: 400 }, (_, i) => `w${i}`);
  const texts: string[] = [];
  for (const n of [31, 32, 33, 63, 64, 65, 100, 300, 700, 1200]) {
    const base = Array.from({ length: n }, () => rng.choice(vocab));
    texts.push(base.join(' '));
    for (let k = 0; k < 3; k++) {
      const w = [...base];
      for (let e = rng.int(Math.ceil(n * 0.4)); e > 0; e--) {
        const i = rng.int(w.length);
        if (rng.float() < 0.5) w.splice(i, 1);
        else w.splice(i, 0, rng.choice(vocab));
      }
      texts.push(w.join(' '));
    }
    texts.push(base.join(' ')); // an exact repeat of a long text must be caught
  }
  for (const t of [0.7, 0.5]) replay(rng.shuffle([...texts]), t, false);
  const idx = new RougeLIndex();
  idx.add(texts.at(-1)!);
  assert.equal(idx.exceeds(texts.at(-1)!), true);
});

test('a large vocabulary and very long tokens (interning tables grow)', () => {
  const rng = new Rng(11);
  const word = () =>
    Array.from({ length: 2 + rng.int(9) }, () => rng.choice([...'abcdef0'])).join('');
  const pool = Array.from({ length: 4000 }, () =>
    Array.from({ length: 2 + rng.int(8) }, word).join(' '),
  );
  pool.push(`${'x'.repeat(700)} ${'y'.repeat(300)}`, `${'x'.repeat(700)}z`);
  const idx = new RougeLIndex();
  for (const p of pool) idx.add(p);
  const queries = [
    ...Array.from({ length: 40 }, () => rng.choice(pool)),
    ...Array.from({ length: 40 }, () => Array.from({ length: 1 + rng.int(8) }, word).join(' ')),
    `${'X'.repeat(700)} ${'y'.repeat(300)}`,
  ];
  for (const q of queries) assert.deepEqual(idx.best(q), bruteForceBest(q, pool), q.slice(0, 60));
});

test('scores at exactly the threshold: the float F decides, as in rouge_score', () => {
  // Query, entry and LCS sizes with 2·LCS / (|q| + |e|) = 0.7 exactly; in floats, F rounds to
  // 0.7 (kept) or 0.7000000000000001 (rejected) depending on the sizes.
  const seen = new Set<number>();
  let cases = 0;
  for (let sum = 20; sum <= 120; sum += 20) {
    const lcs = (7 * sum) / 20;
    for (let nq = lcs; nq <= sum - lcs; nq++) {
      const ne = sum - nq;
      const shared = Array.from({ length: lcs }, (_, i) => `s${i}`);
      const q = [...shared, ...Array.from({ length: nq - lcs }, (_, i) => `q${i}`)].join(' ');
      const e = [...Array.from({ length: ne - lcs }, (_, i) => `e${i}`), ...shared].join(' ');
      const want = rougeL(q, e).fmeasure;
      seen.add(want);
      const idx = new RougeLIndex({ threshold: 0.7 });
      idx.add(e);
      assert.equal(idx.best(q).score, want);
      assert.equal(idx.exceeds(q), want > 0.7, `${nq} ${ne} ${lcs}: ${want}`);
      cases++;
    }
  }
  assert.ok(cases > 100);
  assert.ok(seen.has(0.7) && seen.has(0.7000000000000001), [...seen].join(' '));
});

test('edge cases: empty pool, empty or unknown query, bad input', () => {
  const idx = new RougeLIndex();
  assert.deepEqual(idx.best('anything'), { score: 0, index: -1, nAtMax: 0 });
  assert.equal(idx.exceeds('anything'), false);
  assert.equal(idx.add('Give three tips.'), 0);
  assert.equal(idx.add('!!!'), 1);
  assert.equal(idx.size, 2);
  assert.deepEqual(idx.best(''), { score: 0, index: 0, nAtMax: 2 });
  assert.deepEqual(idx.best('unrelated words'), { score: 0, index: 0, nAtMax: 2 });
  assert.deepEqual(idx.best('give THREE tips'), { score: 1, index: 0, nAtMax: 1 });
  assert.equal(rougeL('', 'x').fmeasure, 0);
  assert.equal(new RougeLIndex({ threshold: -1 }).exceeds('x'), false); // empty pool
  assert.throws(
    () => new RougeLIndex({ threshold: Number.NaN }),
    (e) => e instanceof ConfigError && e.field === 'threshold',
  );
  const notString = undefined as unknown as string;
  for (const call of [
    () => idx.add(notString),
    () => idx.best(notString),
    () => idx.exceeds(notString),
    () => rougeL(notString, 'x'),
  ]) {
    assert.throws(call, (e) => e instanceof DataError && e.field === 'text');
  }
});
