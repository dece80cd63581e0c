// The runtime layer: feeds of every dtype, pre-allocated outputs written in place, missing
// feeds, tensor validation, the shape-bucket session cache.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Graph } from '../../src/engine/graph.ts';
import * as O from '../../src/engine/ops.ts';
import { createSession, SessionCache, tensor } from '../../src/engine/runtime.ts';
import { ShapeError } from '../../src/util/errors.ts';

test('int64, int32, bool and float64 feeds round-trip', async () => {
  const g = new Graph({ name: 'dtypes' });
  const ids = g.input('ids', 'int64', [3]);
  const i32 = g.input('i32', 'int32', [3]);
  const m = g.input('m', 'bool', [3]);
  const f = g.input('f', 'float64', [3]);
  g.output('ids2', ids.add(1));
  g.output('sum', i32.cast('int64').add(ids));
  g.output('masked', O.where(m, f, -1));
  const s = await createSession(g, { threads: 1 });
  const r = await s.run({
    ids: tensor('int64', [3], BigInt64Array.of(1n, 2n, 2n ** 40n)),
    i32: tensor('int32', [3], Int32Array.of(5, 6, 7)),
    m: tensor('bool', [3], Uint8Array.of(1, 0, 1)),
    f: tensor('float64', [3], Float64Array.of(0.5, 1.5, 2.5)),
  });
  assert.deepEqual([...(r.ids2!.data as BigInt64Array)], [2n, 3n, 2n ** 40n + 1n]);
  assert.deepEqual([...(r.sum!.data as BigInt64Array)], [6n, 8n, 2n ** 40n + 7n]);
  assert.equal(r.masked!.dtype, 'float64');
  assert.deepEqual([...(r.masked!.data as Float64Array)], [0.5, -1, 2.5]);
  assert.ok(s.createMs > 0);
});

test('pre-allocated outputs: ORT writes into the given buffers', async () => {
  const g = new Graph({ name: 'prealloc' });
  const x = g.input('x', 'float32', [4]);
  g.output('y', x.mul(2));
  g.output('z', x.neg());
  const s = await createSession(g, { threads: 1 });
  const y = tensor('float32', [4]);
  const z = tensor('float32', [4]);
  const r = await s.run({ x: tensor('float32', [4], Float32Array.of(1, 2, 3, 4)) }, { y, z });
  assert.equal(r.y, y);
  assert.deepEqual([...y.data], [2, 4, 6, 8]);
  assert.deepEqual([...z.data], [-1, -2, -3, -4]);
  const only = await s.run({ x: tensor('float32', [4], Float32Array.of(1, 1, 1, 1)) }, ['z']);
  assert.deepEqual(Object.keys(only), ['z']);
});

test('missing feeds and bad tensors are ShapeErrors', async () => {
  const g = new Graph({ name: 'feeds' });
  g.output('y', g.input('x', 'float32', [2]).exp());
  const s = await createSession(g, { threads: 1 });
  await assert.rejects(
    s.run({}),
    (e: unknown) => e instanceof ShapeError && /missing feed 'x'/.test(e.message),
  );
  assert.throws(() => tensor('float32', [3], new Float32Array(2)), ShapeError);
  assert.throws(() => tensor('int64', [2], new Float32Array(2) as never), ShapeError);
});

test('SessionCache builds one session per shape bucket', async () => {
  let builds = 0;
  const cache = new SessionCache<{ t: number }>(
    ({ t }) => {
      builds++;
      const g = new Graph({ name: `bucket-${t}` });
      g.output('y', g.input('x', 'float32', [t]).sum());
      return g;
    },
    { threads: 1 },
  );
  const a = await cache.get({ t: 4 });
  const b = await cache.get({ t: 4 });
  const c = await cache.get({ t: 8 });
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.equal(builds, 2);
  assert.equal(cache.size, 2);
  const r = await c.run({ x: tensor('float32', [8], new Float32Array(8).fill(0.5)) });
  assert.equal((r.y!.data as Float32Array)[0], 4);
  await cache.clear();
  assert.equal(cache.size, 0);
});
