// bench/generate says the fair thing first: its default (headline) run is the medium shape, and
// a run only reports ratios when both sides ran the same threads, warm-up and token count.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { repoRoot } from '../helpers/shared.ts';

const bench = (...args: string[]) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/generate.ts', ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return { json: JSON.parse(r.stdout.trim().split('\n').at(-1)!), stdout: r.stdout };
};

test('the headline run is the medium shape; flags are read as given', () => {
  const plan = bench('--plan').json;
  assert.equal(plan.shape, 'medium');
  assert.equal(plan.new_tokens, 96);
  assert.ok(plan.threads >= 1 && plan.warmup_tokens > 0);
  const other = bench('40', '--threads', '1', '--shape', 'tiny', '--plan').json;
  assert.deepEqual([other.shape, other.threads, other.new_tokens], ['tiny', 1, 40]);
});

test('a (tiny, short) run: same threads, warm-up and generated tokens on both sides', () => {
  const { json, stdout } = bench('2', '--shape', 'tiny', '--threads', '1');
  assert.equal(json.shape, 'tiny');
  assert.equal(json.ours_threads, 1);
  assert.equal(json.llamacpp_threads, 1);
  assert.deepEqual(json.ours_tokens, { single: 2, batch32: 64 });
  assert.deepEqual(json.llamacpp_tokens, json.ours_tokens);
  assert.ok(json.warmup_tokens > 0);
  assert.match(stdout, /tiny shape, 1 threads each, \d+-token warm-up each, 2 new tokens/);
  assert.ok(json.ratio_single > 0 && json.ratio_batch32 > 0);
});
