// `npm run bench -- <name> [args]` (scripts/bench.mjs), exercised on bench/data-mix.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/shared.ts';

const npmBench = (...args: string[]) =>
  spawnSync('npm', ['run', '--silent', 'bench', '--', ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
  });

test('npm run bench: lists the benches, runs one with its args, rejects an unknown name', () => {
  const listed = npmBench();
  assert.equal(listed.status, 0, listed.stderr);
  const names = readdirSync(join(repoRoot, 'bench'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3));
  assert.ok(names.length >= 2);
  for (const n of names) assert.match(listed.stdout, new RegExp(`^ {2}${n} `, 'm'), n);

  // A small run; the args must reach the bench (its JSON echoes them).
  const run = npmBench('data-mix', '20000', '--strategy', 'temperature');
  assert.equal(run.status, 0, run.stderr);
  const last = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
  assert.equal(last.bench, 'data-mix');
  assert.equal(last.examples, 20000);
  assert.equal(last.strategy, 'temperature');
  assert.ok(last.examples_per_s > 0 && last.peak_rss_mb > 0);

  const bad = npmBench('no-such-bench');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /no bench named 'no-such-bench'/);
});
