import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inspectFile, type JobProgress } from '../../src/data/jobs.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-jobs-'));

test('inspectFile sample: seeded, one pass with progress, uniform over the whole file', async () => {
  const N = 60;
  const K = 6;
  const p = join(dir, 'rows.jsonl');
  writeFileSync(
    p,
    Array.from({ length: N }, (_, i) => JSON.stringify({ prompt: `p${i}`, completion: 'c' })).join(
      '\n',
    ),
  );
  let ticks = 0;
  let done = 0;
  const progress: JobProgress = {
    tick(n = 1) {
      ticks += n;
    },
    setTotal() {},
    done() {
      done++;
    },
  };
  const a = await inspectFile({ input: p, sample: true, count: K, seed: 7, progress });
  assert.equal(ticks, N, 'every record is read once');
  assert.equal(done, 1);
  assert.equal(a.seen, N);
  assert.equal(a.records.length, K);
  const rows = a.records.map((r) => r.row);
  assert.deepEqual(
    rows,
    [...rows].sort((x, y) => x - y),
    'shown in file order',
  );
  assert.equal(new Set(rows).size, K);
  const again = await inspectFile({ input: p, sample: true, count: K, seed: 7 });
  assert.deepEqual(
    again.records.map((r) => r.row),
    rows,
  );
  // Over many seeds each row is picked with probability K/N; the first or last rows are not
  // favoured. A chi-square over the N inclusion counts stays far below 2x its degrees of freedom.
  const SEEDS = 300;
  const hits = new Array<number>(N).fill(0);
  for (let s = 0; s < SEEDS; s++)
    for (const r of (await inspectFile({ input: p, sample: true, count: K, seed: s })).records)
      hits[r.row]!++;
  const expected = (SEEDS * K) / N;
  const chi2 = hits.reduce((acc, h) => acc + (h - expected) ** 2 / expected, 0);
  assert.ok(chi2 < 2 * (N - 1), `chi2 ${chi2.toFixed(1)} over ${N - 1} df: ${hits.join(',')}`);
  assert.ok(hits.every((h) => h > 0));
});
