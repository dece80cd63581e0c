// A short fixed-seed slice of bench/fuzz: every target runs its seeds and some mutants in the
// fuzz worker; none may crash (throw anything but the project's typed errors, answer 5xx),
// hang or run out of memory. The full run is `npm run bench -- fuzz`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuzz, TARGET_NAMES } from '../../bench/fuzz/runner.ts';

const PER_TARGET = 40;

test(`fuzz slice: ${PER_TARGET} inputs per target, seed 11, no crash, hang or OOM`, async () => {
  const r = await fuzz({
    targets: TARGET_NAMES,
    seed: 11,
    inputs: PER_TARGET * TARGET_NAMES.length,
    budgetSec: 600,
    timeoutMs: 20_000,
  });
  for (const s of r.stats) {
    assert.equal(s.error, undefined, `${s.target}: setup failed`);
    assert.equal(s.inputs, PER_TARGET, `${s.target}: ran ${s.inputs} inputs`);
  }
  const bad = r.findings
    .filter((f) => f.kind !== 'slow')
    .map((f) => `${f.kind} in ${f.target}: ${f.error}\n${f.stack ?? ''}`);
  assert.deepEqual(bad, []);
  assert.ok(r.stats.reduce((a, s) => a + s.rejected, 0) > 0, 'mutants reach the typed errors');
});
