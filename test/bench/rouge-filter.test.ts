// bench/rouge-filter's headline speedup is against the brute force Alpaca's script runs
// (tokenise each string once, score every pair), with the re-tokenising figure beside it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { noShared, repoRoot } from '../helpers/shared.ts';

test('headline speedup is over the tokenise-once brute force; both brute forces agree with the index', {
  skip: noShared,
}, () => {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'bench/rouge-filter.ts', '300', '--brute-every', '3', '--seed', '5'],
    { cwd: repoRoot, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.equal(j.candidates, 300);
  assert.equal(j.identical, true);
  assert.match(j.brute_force, /tokenise once/);
  // The headline is computed from the tokenise-once figures, today's from the re-tokenising ones.
  assert.ok(Math.abs(j.speedup - j.brute_force_ms / j.fast_ms) <= 0.5 + 0.02 * j.speedup, r.stdout);
  const retok = j.retokenising_brute_force_ms / j.fast_ms;
  assert.ok(Math.abs(j.speedup_vs_retokenising - retok) <= 0.5 + 0.02 * retok, r.stdout);
  assert.ok(j.brute_force_tokenise_ms > 0 && j.brute_force_us_per_pair > 0);
  // The human-readable summary leads with the tokenise-once comparison.
  assert.match(r.stdout, /speedup over the tokenise-once brute force \(Alpaca\): \d+x/);
});
