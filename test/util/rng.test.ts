import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/util/rng.ts';

test('same seed gives the same stream; different seeds differ', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const xa = Array.from({ length: 8 }, () => a.nextU32());
  const xb = Array.from({ length: 8 }, () => b.nextU32());
  const xc = Array.from({ length: 8 }, () => c.nextU32());
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, xc);
  assert.notDeepEqual(new Rng('a').nextU32(), new Rng('b').nextU32());
});

test('int is unbiased enough and in range; float in [0,1)', () => {
  const r = new Rng(1);
  const counts = new Array(6).fill(0);
  for (let i = 0; i < 60000; i++) counts[r.int(6)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 500, `count ${c}`);
  for (let i = 0; i < 1000; i++) {
    const f = r.float();
    assert.ok(f >= 0 && f < 1);
  }
  assert.throws(() => r.int(0), RangeError);
});

test('normal has mean 0 and variance 1', () => {
  const r = new Rng(7);
  let s = 0;
  let s2 = 0;
  const n = 50000;
  for (let i = 0; i < n; i++) {
    const x = r.normal();
    s += x;
    s2 += x * x;
  }
  assert.ok(Math.abs(s / n) < 0.02);
  assert.ok(Math.abs(s2 / n - 1) < 0.03);
});

test('shuffle is a permutation, sample is distinct, fork is deterministic', () => {
  const r = new Rng(3);
  const xs = r.shuffle(Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual(
    [...xs].sort((a, b) => a - b),
    Array.from({ length: 100 }, (_, i) => i),
  );
  const s = r.sample(xs, 10);
  assert.equal(new Set(s).size, 10);
  const p = new Rng(9);
  assert.equal(p.fork('x').nextU32(), new Rng(9).fork('x').nextU32());
  assert.notEqual(p.fork('x').nextU32(), p.fork('y').nextU32());
});
