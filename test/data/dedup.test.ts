import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DedupConfig,
  Deduper,
  type DedupReport,
  type DuplicateDecision,
  dedupRecords,
  lshCandidateProbability,
  lshThreshold,
  shingleJaccard,
} from '../../src/data/dedup.ts';
import { normalizeText } from '../../src/data/text.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

const base = 'Write a short poem about the ocean at night, mentioning the moon and the stars.';
const near = 'Write a short poem about the sea at night, mentioning the moon and the stars.'; // J ~ 0.80
const justUnder =
  'Compose a brief poem about the ocean at night, mentioning the moon and the stars.'; // J ~ 0.67
const far = 'Write a short story about the ocean at dawn, mentioning the sun and the birds.'; // J ~ 0.44

const rec = (instruction: string, output = 'some answer') => ({ instruction, input: '', output });

async function run(texts: string[], config = {}) {
  const removed: DuplicateDecision[] = [];
  const report: DedupReport = { total: 0, kept: 0, removedExact: 0, removedNear: 0 };
  const kept = [];
  for await (const r of dedupRecords(
    texts.map((t) => rec(t)),
    'instruction',
    { fields: ['instruction'], ...config },
    {
      report,
      onRemoved: (d) => {
        removed.push(d);
      },
    },
  ))
    kept.push(r.instruction);
  return { kept, removed, report };
}

test('normalisation: case, whitespace and punctuation', () => {
  assert.equal(
    normalizeText('  Give THREE tips,\tfor staying   healthy!! '),
    'give three tips for staying healthy',
  );
  assert.equal(normalizeText('Ｆｕｌｌ－width'), 'full width');
});

test('LSH parameters: documented threshold and S-curve', () => {
  const c = DedupConfig.parse({});
  assert.equal(c.numPerm / c.bands, 6);
  assert.ok(Math.abs(lshThreshold(20, 6) - 0.607) < 1e-3);
  assert.ok(Math.abs(lshCandidateProbability(0.7, 20, 6) - 0.918) < 1e-3);
  assert.throws(
    () => new Deduper({ numPerm: 100, bands: 16 }),
    (e) => e instanceof ConfigError && e.field === 'bands',
  );
  assert.throws(
    () => new Deduper({ bandz: 3 } as never),
    (e) => e instanceof ConfigError && /bandz/.test(e.message),
  );
});

test('exact dedup on normalised text keeps the first occurrence', async () => {
  const { kept, removed, report } = await run(
    [
      'Give three tips for staying healthy.',
      'give three tips  for staying HEALTHY!',
      'Name a prime.',
      'Give three tips for staying healthy',
    ],
    { mode: 'exact' },
  );
  assert.deepEqual(kept, ['Give three tips for staying healthy.', 'Name a prime.']);
  assert.deepEqual(removed, [
    { index: 1, kind: 'exact', duplicateOf: 0 },
    { index: 3, kind: 'exact', duplicateOf: 0 },
  ]);
  assert.deepEqual(report, { total: 4, kept: 2, removedExact: 2, removedNear: 0 });
});

test('near dedup removes a constructed near duplicate and keeps a pair just under the threshold', async () => {
  const jNear = shingleJaccard(base, near);
  const jUnder = shingleJaccard(base, justUnder);
  assert.ok(jNear >= 0.75 && jNear < 0.9, String(jNear));
  assert.ok(jUnder >= 0.65 && jUnder < 0.7, String(jUnder));
  const { kept, removed } = await run([base, near, justUnder, far, base.toUpperCase()]);
  assert.deepEqual(kept, [base, justUnder, far]);
  assert.equal(removed.length, 2);
  assert.deepEqual(removed[0], { index: 1, kind: 'near', duplicateOf: 0, similarity: jNear });
  assert.deepEqual(removed[1], { index: 4, kind: 'exact', duplicateOf: 0 });
  // Lowering the threshold below the pair's similarity removes it too.
  const lower = await run([base, justUnder], { threshold: 0.6 });
  assert.deepEqual(lower.kept, [base]);
});

test('estimate verification decides on the signature estimate', async () => {
  const { kept, removed } = await run([base, near, far], { verify: 'estimate' });
  assert.deepEqual(kept, [base, far]);
  assert.ok(Math.abs(removed[0]!.similarity! - shingleJaccard(base, near)) < 0.12);
});

test('near dedup at scale: no false removals, high recall above the threshold, deterministic', async () => {
  const rng = new Rng(9);
  const vocab = Array.from({ length: 400 }, (_, i) => `w${i.toString(36)}${'xyz'[i % 3]}`);
  const texts: string[] = [];
  const truth: { a: number; b: number }[] = [];
  for (let i = 0; i < 300; i++) {
    const words = Array.from({ length: 24 }, () => rng.choice(vocab));
    texts.push(words.join(' '));
    if (i % 3 === 0) {
      const v = words.slice();
      const edits = rng.int(6);
      for (let e = 0; e < edits; e++) v[rng.int(v.length)] = rng.choice(vocab);
      texts.push(v.join(' '));
      truth.push({ a: texts.length - 2, b: texts.length - 1 });
    }
  }
  const { removed } = await run(texts);
  const again = await run(texts);
  assert.deepEqual(again.removed, removed);
  for (const d of removed) {
    const j = shingleJaccard(texts[d.index]!, texts[d.duplicateOf]!);
    assert.ok(j >= 0.7, `removed pair with J=${j}`);
  }
  const high = truth.filter((t) => shingleJaccard(texts[t.a]!, texts[t.b]!) >= 0.8);
  const found = high.filter((t) => removed.some((d) => d.index === t.b && d.duplicateOf === t.a));
  assert.ok(high.length > 20);
  assert.ok(found.length / high.length >= 0.95, `${found.length}/${high.length}`);
});

test('both modes: a record identical to a removed near duplicate names the kept record', async () => {
  // Record 1 is a near duplicate of 0 and removed; record 2 repeats record 1 exactly. It must be
  // reported against record 0 (the one in the output), never against the removed record 1.
  const { kept, removed } = await run([base, near, near, far]);
  assert.deepEqual(kept, [base, far]);
  assert.equal(removed.length, 2);
  assert.deepEqual(removed[0], {
    index: 1,
    kind: 'near',
    duplicateOf: 0,
    similarity: shingleJaccard(base, near),
  });
  assert.equal(removed[1]!.index, 2);
  assert.equal(removed[1]!.duplicateOf, 0);
  // Every reported target is a record that was kept.
  const keptIdx = new Set([0, 3]);
  for (const d of removed) assert.ok(keptIdx.has(d.duplicateOf), JSON.stringify(d));
});

test('exact dedup verifies the text on a hash match: a collision is not a duplicate', () => {
  // Every text hashes to the same key: only the text comparison can tell them apart.
  const d = new Deduper({ mode: 'exact' }, { hash: () => 42 });
  assert.equal(d.check('Name a prime.', 0), undefined);
  assert.equal(d.check('Give three tips for staying healthy.', 1), undefined);
  assert.equal(d.check('Something else entirely', 2), undefined);
  assert.deepEqual(d.check('give three tips for staying HEALTHY', 3), {
    index: 3,
    kind: 'exact',
    duplicateOf: 1,
  });
  assert.deepEqual(d.check('name a PRIME', 4), { index: 4, kind: 'exact', duplicateOf: 0 });
  assert.equal(d.kept, 3);
});

test('memory: a Deduper holds only kept records, whatever it removes', () => {
  const d = new Deduper({ mode: 'both' });
  let i = 0;
  d.check(base, i++);
  d.check(far, i++);
  // 200 removals: exact copies, near copies and exact copies of near copies.
  for (let k = 0; k < 50; k++) {
    assert.ok(d.check(base.toUpperCase(), i++));
    assert.ok(d.check(near, i++));
    assert.ok(d.check(`${near}  `, i++));
    assert.ok(d.check(far, i++));
  }
  assert.equal(d.kept, 2);
  assert.deepEqual(d.stored, { exact: 2, near: 2 });
  const e = new Deduper({ mode: 'exact' });
  e.check('a b c', 0);
  for (let k = 1; k < 20; k++) e.check('A  b c!', k);
  assert.deepEqual(e.stored, { exact: 1, near: 0 });
});
