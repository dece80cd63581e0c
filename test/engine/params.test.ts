// The flat parameter store: packing, zero-copy views, seeded initialisers (normal, Kaiming
// uniform as torch / PEFT's lora_A), frozen parameters kept apart, decay defaults, bad specs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ParamStore, planLayout } from '../../src/engine/params.ts';
import { ConfigError, ShapeError } from '../../src/util/errors.ts';

const specs = [
  { name: 'wte', shape: [16, 8], init: { kind: 'normal' as const, std: 0.02 } },
  { name: 'ln.weight', shape: [8], init: { kind: 'ones' as const } },
  { name: 'base.weight', shape: [8, 8], init: { kind: 'normal' as const, std: 1 }, frozen: true },
  { name: 'lora_A', shape: [4, 8], init: { kind: 'kaiming_uniform' as const } },
  { name: 'lora_B', shape: [8, 4] },
];

test('trainable parameters are packed contiguously in spec order; frozen ones apart', () => {
  const s = ParamStore.create(specs, { seed: 1 });
  assert.deepEqual(
    s.layout.views.map((v) => [v.name, v.offset, v.size]),
    [
      ['wte', 0, 128],
      ['ln.weight', 128, 8],
      ['lora_A', 136, 32],
      ['lora_B', 168, 32],
    ],
  );
  assert.equal(s.layout.size, 200);
  assert.equal(s.flat.length, 200);
  assert.deepEqual(s.names, ['wte', 'ln.weight', 'lora_A', 'lora_B']);
  assert.equal(s.frozen.length, 1);
  assert.equal(s.frozen[0]?.name, 'base.weight');
  assert.equal(s.get('base.weight').length, 64);
  assert.ok(s.has('base.weight') && s.has('wte') && !s.has('nope'));
  assert.throws(() => s.view('base.weight'), ShapeError);
});

test('views share memory with the flat buffer', () => {
  const s = ParamStore.create(specs, { seed: 1 });
  const ln = s.get('ln.weight');
  assert.equal(ln.buffer, s.flat.buffer);
  assert.deepEqual([...ln], new Array(8).fill(1));
  ln[3] = 7;
  assert.equal(s.flat[128 + 3], 7);
  s.set('lora_B', new Array(32).fill(0.5));
  assert.equal(s.flat[168], 0.5);
  assert.deepEqual([...s.get('lora_B')], new Array(32).fill(0.5));
  assert.throws(() => s.set('lora_B', [1, 2]), ShapeError);
});

test('same seed gives the same values; another seed differs; names fork independently', () => {
  const a = ParamStore.create(specs, { seed: 7 });
  const b = ParamStore.create(specs, { seed: 7 });
  const c = ParamStore.create(specs, { seed: 8 });
  assert.deepEqual(a.flat, b.flat);
  assert.deepEqual(a.get('base.weight'), b.get('base.weight'));
  assert.notDeepEqual(a.get('wte'), c.get('wte'));
  // Dropping a parameter does not shift the random streams of the others.
  const d = ParamStore.create(
    specs.filter((x) => x.name !== 'wte'),
    { seed: 7 },
  );
  assert.deepEqual(d.get('lora_A'), a.get('lora_A'));
  assert.deepEqual(d.get('base.weight'), a.get('base.weight'));
});

test('normal init has the requested mean and std', () => {
  const s = ParamStore.create(
    [{ name: 'w', shape: [200, 100], init: { kind: 'normal', std: 0.02, mean: 0.5 } }],
    { seed: 3 },
  );
  const x = s.get('w');
  let m = 0;
  for (const v of x) m += v;
  m /= x.length;
  let var_ = 0;
  for (const v of x) var_ += (v - m) ** 2;
  const std = Math.sqrt(var_ / x.length);
  assert.ok(Math.abs(m - 0.5) < 0.001, `mean ${m}`);
  assert.ok(Math.abs(std - 0.02) < 0.0005, `std ${std}`);
});

test('kaiming_uniform(a=√5) is U(±1/√fan_in), fan_in the last dim (lora_A [r, in])', () => {
  const s = ParamStore.create(
    [
      { name: 'A', shape: [64, 256], init: { kind: 'kaiming_uniform' } },
      { name: 'R', shape: [64, 256], init: { kind: 'kaiming_uniform', a: 0 } },
    ],
    { seed: 5 },
  );
  const bound = 1 / Math.sqrt(256);
  const a = s.get('A');
  const maxA = a.reduce((p, v) => Math.max(p, Math.abs(v)), 0);
  assert.ok(maxA <= bound && maxA > 0.99 * bound, `max ${maxA}, bound ${bound}`);
  // a = 0 (ReLU gain √2): bound √6/√fan_in
  const r = s.get('R');
  const maxR = r.reduce((p, v) => Math.max(p, Math.abs(v)), 0);
  const boundR = Math.sqrt(6 / 256);
  assert.ok(maxR <= boundR * (1 + 1e-6) && maxR > 0.99 * boundR, `max ${maxR}`);
});

test('constant, uniform and data initialisers', () => {
  const s = ParamStore.create(
    [
      { name: 'c', shape: [3], init: { kind: 'constant', value: -2 } },
      { name: 'u', shape: [1000], init: { kind: 'uniform', low: 2, high: 3 } },
      { name: 'd', shape: [2, 2], init: { kind: 'data', data: [1, 2, 3, 4] } },
      { name: 'z', shape: [2] },
    ],
    { seed: 0 },
  );
  assert.deepEqual([...s.get('c')], [-2, -2, -2]);
  assert.ok(s.get('u').every((v) => v >= 2 && v < 3));
  assert.deepEqual([...s.get('d')], [1, 2, 3, 4]);
  assert.deepEqual([...s.get('z')], [0, 0]);
  assert.throws(
    () =>
      ParamStore.create([{ name: 'd', shape: [3], init: { kind: 'data', data: [1] } }], {
        seed: 0,
      }),
    ShapeError,
  );
});

test('decay defaults to matrices only and can be overridden', () => {
  const l = planLayout([
    { name: 'w', shape: [2, 2] },
    { name: 'b', shape: [2] },
    { name: 'emb', shape: [4, 2], decay: false },
    { name: 'g', shape: [2], decay: true },
  ]);
  assert.deepEqual(
    l.views.map((v) => v.decay),
    [true, false, false, true],
  );
});

test('bad specs are ConfigErrors naming the field', () => {
  const bad: [Parameters<typeof planLayout>[0], RegExp][] = [
    [
      [
        { name: 'a', shape: [2] },
        { name: 'a', shape: [3] },
      ],
      /field 'params.1.name'.*duplicate/,
    ],
    [[{ name: '', shape: [2] }], /field 'params.0.name'/],
    [[{ name: 'w', shape: [2, 0] }], /field 'params.0.shape'/],
    [[{ name: 'w', shape: [2.5] }], /field 'params.0.shape'/],
  ];
  for (const [s, re] of bad)
    assert.throws(
      () => planLayout(s),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
    );
});

test('fromBuffers checks sizes', () => {
  const s = ParamStore.create(specs, { seed: 1 });
  const t = ParamStore.fromBuffers(s.layout, new Float32Array(200), s.frozen);
  assert.equal(t.get('lora_B').length, 32);
  assert.throws(() => ParamStore.fromBuffers(s.layout, new Float32Array(199), []), ShapeError);
});
