import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { PyRandom } from '../../src/util/pyrandom.ts';
import { fixture } from '../helpers/shared.ts';

interface Case {
  seed: string;
  u32: number[];
  floats: number[];
  choices: number[];
  shuffle: number[];
}
const expected = JSON.parse(readFileSync(fixture('pyrandom', 'expected.json'), 'utf8')) as {
  cases: Case[];
};

test('PyRandom reproduces CPython random for every recorded seed', () => {
  assert.ok(expected.cases.length >= 8);
  for (const c of expected.cases) {
    const seed = BigInt(c.seed);
    let r = new PyRandom(seed);
    assert.deepEqual(
      c.u32.map(() => r.getrandbits(32)),
      c.u32,
      `u32 seed ${c.seed}`,
    );
    r = new PyRandom(seed);
    assert.deepEqual(
      c.floats.map(() => r.random()),
      c.floats,
      `random() seed ${c.seed}`,
    );
    r = new PyRandom(seed);
    const ns = [1, 2, 3, 5, 7, 10, 100, 1000, 65537];
    assert.deepEqual(
      ns.map((n) => r.choice(Array.from({ length: n }, (_, i) => i))),
      c.choices,
      `choice seed ${c.seed}`,
    );
    r = new PyRandom(seed);
    assert.deepEqual(
      r.shuffle(Array.from({ length: 10 }, (_, i) => i)),
      c.shuffle,
      `shuffle seed ${c.seed}`,
    );
  }
});

test('choice on an empty sequence throws', () => {
  assert.throws(() => new PyRandom(1).choice([]), /empty sequence/);
});
