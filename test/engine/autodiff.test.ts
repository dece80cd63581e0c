// Reverse-mode autodiff: fan-out accumulation, frozen params (no gradient graph at all),
// pruning to what the loss needs, detach, vector-Jacobian seeds, gradients w.r.t. views of a
// flat buffer, composite contracts, and that checkOp itself catches a wrong vjp.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { detach, grad } from '../../src/engine/autodiff.ts';
import { checkOp } from '../../src/engine/gradcheck.ts';
import type { OpDef } from '../../src/engine/graph.ts';
import { Graph } from '../../src/engine/graph.ts';
import { liveNodes } from '../../src/engine/onnx.ts';
import * as O from '../../src/engine/ops.ts';
import { createSession, tensor } from '../../src/engine/runtime.ts';
import { ShapeError } from '../../src/util/errors.ts';

test('fan-out: a value used several times sums its gradients', async () => {
  await checkOp('fanout', [{ shape: [2, 3] }, { shape: [3, 3] }], (x, w) => {
    const a = x.tanh();
    const b = a.mul(x).matmul(w);
    return a.add(b).mul(a).add(x.matmul(w).matmul(w));
  });
});

test('frozen params get no gradient graph (LoRA shape)', () => {
  const build = (frozen: boolean) => {
    const g = new Graph();
    const x = g.input('x', 'float32', [4, 8]);
    const w = g.param('w', [8, 8], { frozen });
    const a = g.param('lora_a', [8, 2]);
    const b = g.param('lora_b', [2, 8]);
    const y = x.matmul(w).add(x.matmul(a).matmul(b)).relu();
    const loss = y.mul(y).mean();
    const wrt = frozen ? [a, b] : [w, a, b];
    for (const [i, d] of grad(loss, wrt).entries()) g.output(`d${i}`, d!);
    return { g, w, loss };
  };
  const frozen = build(true);
  const live = liveNodes(frozen.g);
  assert.ok(
    !live.some((n) => n.outputs.some((o) => o.shape.join() === '8,8')),
    'no [8,8] gradient node',
  );
  const mm = (g: Graph) => liveNodes(g).filter((n) => n.op.name === 'matmul').length;
  assert.equal(mm(frozen.g), 3 + 3, '3 forward + 3 backward matmuls (dA, dB, dX of the LoRA path)');
  assert.equal(mm(build(false).g), 3 + 4);
  assert.throws(
    () => grad(frozen.loss, [frozen.w]),
    (e: unknown) => e instanceof ShapeError && /frozen/.test(e.message),
  );
  assert.deepEqual(
    frozen.g.params({ trainable: true }).map((p) => p.name),
    ['lora_a', 'lora_b'],
  );
});

test('only the path from wrt to loss is differentiated; unused wrt gives zeros', async () => {
  const g = new Graph({ name: 'paths' });
  const x = g.input('x', 'float32', [3]);
  const w1 = g.param('w1', [3]);
  const w2 = g.param('w2', [3]);
  const other = x.mul(w2).exp(); // does not reach the loss
  const loss = x.mul(w1).sum();
  const before = g.nodes.length;
  const [d1, d2] = grad(loss, [w1, w2]);
  const added = g.nodes.slice(before);
  assert.ok(!added.some((n) => n.inputs.includes(other)), 'no gradient through the unused branch');
  assert.equal(grad(loss, [w2], { allowUnused: true })[0], undefined);
  g.output('d1', d1!);
  g.output('d2', d2!);
  const r = await (await createSession(g, { threads: 1 })).run({
    x: tensor('float32', [3], Float32Array.of(1, 2, 3)),
    w1: tensor('float32', [3]),
    w2: tensor('float32', [3]),
  });
  assert.deepEqual([...(r.d1!.data as Float32Array)], [1, 2, 3]);
  assert.deepEqual([...(r.d2!.data as Float32Array)], [0, 0, 0]);
});

test('detach cuts gradient flow; seeds give vector-Jacobian products', async () => {
  const g = new Graph({ name: 'vjp' });
  const x = g.input('x', 'float64', [3]);
  const dy = g.input('dy', 'float64', [3]);
  const [dx] = grad(x.mul(x), [x], { seed: dy });
  // d/dx [x·stop(eˣ)] = eˣ: the detached factor is a constant to autodiff.
  const [dd] = grad(x.mul(detach(x.exp())).sum(), [x]);
  g.output('dx', dx!);
  g.output('dd', dd!);
  const r = await (await createSession(g, { threads: 1 })).run({
    x: tensor('float64', [3], Float64Array.of(1, 2, 3)),
    dy: tensor('float64', [3], Float64Array.of(1, 10, 100)),
  });
  assert.deepEqual([...(r.dx!.data as Float64Array)], [2, 40, 600]);
  const dd2 = r.dd!.data as Float64Array;
  for (const [i, v] of [1, 2, 3].entries())
    assert.ok(Math.abs((dd2[i] as number) - Math.exp(v)) < 1e-12);
  assert.throws(() => grad(x.mul(x), [x]), /not a scalar/);
});

test('gradients w.r.t. views of one flat parameter buffer', async () => {
  // The optimizer keeps params flat; the model reads views; grads w.r.t. the views concat back.
  const g = new Graph({ name: 'flat' });
  const flat = g.input('flat', 'float64', [9]);
  const w = flat.slice(0, 0, 6).reshape([2, 3]);
  const b = flat.slice(0, 6, 9);
  const x = g.input('x', 'float64', [4, 2]);
  const loss = x.matmul(w).add(b).tanh().sum();
  const [dw, db, dflat] = grad(loss, [w, b, flat]);
  g.output('dflat_views', O.concat([dw!.reshape([6]), db!], 0));
  g.output('dflat', dflat!);
  const r = await (await createSession(g, { threads: 1 })).run({
    flat: tensor(
      'float64',
      [9],
      Float64Array.from({ length: 9 }, (_, i) => Math.sin(i)),
    ),
    x: tensor(
      'float64',
      [4, 2],
      Float64Array.from({ length: 8 }, (_, i) => Math.cos(i)),
    ),
  });
  const a = r.dflat_views!.data as Float64Array;
  const e = r.dflat!.data as Float64Array;
  for (let i = 0; i < 9; i++) assert.ok(Math.abs((a[i] as number) - (e[i] as number)) < 1e-12);
});

test('ops without a gradient and composites hiding a differentiable input are errors', () => {
  const g = new Graph();
  const x = g.input('x', 'float32', [3]);
  const w = g.param('w', [3]);
  assert.throws(
    () => grad(O.sign(x.mul(w)).sum(), [w]),
    (e: unknown) => e instanceof ShapeError && e.op === 'sign',
  );
  const sneaky = g.composite('sneaky', [x], () => {
    const y = x.mul(w); // reads w without declaring it
    return { outputs: [y], vjp: ([dy]) => [dy!.mul(w)] };
  })[0]!;
  assert.throws(() => grad(sneaky.sum(), [w]), /without declaring it/);
});

test('checkOp catches a wrong vjp', async () => {
  const BAD: OpDef<Record<string, never>> = {
    name: 'bad_square',
    infer: ([x]) => [{ dtype: x!.dtype, shape: x!.shape }],
    emit(e, n) {
      e.node('Mul', [e.name(n.inputs[0]!), e.name(n.inputs[0]!)], [e.name(n.outputs[0]!)]);
    },
    vjp: (n, [dy]) => [dy!.mul(n.inputs[0]!).mul(2.001)], // should be exactly 2
  };
  await assert.rejects(
    checkOp('bad_square', [{ shape: [3] }], (x) => x.graph.apply(BAD, [x], {})[0]!),
    /bad_square: d\/dx0/,
  );
});
