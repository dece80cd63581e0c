// The graph builder: build-time ShapeErrors naming the op and both shapes, symbolic dims that
// are resolved at run time, output naming, dead-node pruning and IK_DUMP_GRAPH dumps.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Graph } from '../../src/engine/graph.ts';
import { describe, toBytes, toModelProto } from '../../src/engine/onnx.ts';
import * as O from '../../src/engine/ops.ts';
import { createSession, tensor } from '../../src/engine/runtime.ts';
import { ShapeError } from '../../src/util/errors.ts';

function throwsShape(fn: () => unknown, op: string, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ShapeError, `expected ShapeError, got ${e}`);
    assert.equal(e.op, op);
    for (const p of parts) assert.ok(e.message.includes(p), `'${e.message}' lacks '${p}'`);
    return true;
  });
}

test('shape mismatches fail at build time, naming the op and both shapes', () => {
  const g = new Graph();
  const a = g.input('a', 'float32', [2, 3]);
  const b = g.input('b', 'float32', [4, 5]);
  const c = g.input('c', 'float32', ['B', 3]);
  throwsShape(() => a.matmul(b), 'matmul', '[2,3]', '[4,5]');
  throwsShape(() => a.add(g.input('d', 'float32', [4])), 'add', '[2,3]', '[4]');
  throwsShape(() => c.mul(g.input('e', 'float32', ['T', 3])), 'mul', '[B,3]', '[T,3]');
  throwsShape(() => a.reshape([4, 2]), 'reshape', '[2,3]', '[4,2]');
  throwsShape(() => O.concat([a, b], 0), 'concat', '[2,3]', '[4,5]');
  throwsShape(() => a.add(g.input('i', 'int64', [3])), 'add', 'float32', 'int64');
  throwsShape(() => a.squeeze([0]), 'squeeze', '[2,3]');
  throwsShape(() => a.transpose([0, 0]), 'transpose', '[2,3]');
  throwsShape(() => O.split(a, 1, [1, 1]), 'split', '[2,3]');
  throwsShape(() => a.sum([2]), 'reduce_sum', 'axis 2');
  throwsShape(() => g.input('a', 'float32', [1]), 'input', "'a'");
  throwsShape(() => g.param('p', [2], { dtype: 'int64' }), 'param', 'float');
  throwsShape(() => a.add(new Graph().input('z', 'float32', [2, 3])), 'add', 'another graph');
  throwsShape(() => O.where(a, a, a), 'where', 'bool');
  throwsShape(() => g.input('ids', 'int64', [2]).mul(0.5), 'scalar', '0.5', 'int64');
});

test('symbolic dims: one session serves several shapes', async () => {
  const g = new Graph({ name: 'symbolic' });
  const x = g.input('x', 'float32', ['B', 'T', 4]);
  const flat = x.reshape([-1, 4]); // [B*T, 4]
  assert.deepEqual(flat.shape, ['B*T', 4]);
  const back = flat.mul(2).reshape(['B', 'T', 2, 2]); // needs B and T at run time
  const m = x.mean([1]); // divides by T, read at run time
  const pos = O.arange(g, 'T', 'float32');
  const past = g.input('past', 'float32', ['B', 'P', 4]);
  const kv = O.concat([past, x.slice(1, -1)], 1);
  assert.deepEqual(kv.shape, ['B', 'P+1', 4]);
  g.output('back', back);
  g.output('mean', m);
  g.output('pos', pos);
  g.output('count', O.full(g, ['P+1', 'B'], 1).sum());
  g.output('kv', kv);
  const s = await createSession(g, { threads: 1 });
  for (const [B, T, P] of [
    [1, 3, 2],
    [2, 5, 0],
  ] as const) {
    const xs = Float32Array.from({ length: B * T * 4 }, (_, i) => i);
    const r = await s.run({
      x: tensor('float32', [B, T, 4], xs),
      past: tensor('float32', [B, P, 4]),
    });
    assert.deepEqual(r.back!.shape, [B, T, 2, 2]);
    assert.deepEqual(
      [...(r.back!.data as Float32Array)],
      [...xs].map((v) => v * 2),
    );
    assert.deepEqual(r.mean!.shape, [B, 4]);
    assert.equal((r.mean!.data as Float32Array)[0], ((T - 1) / 2) * 4);
    assert.deepEqual(
      [...(r.pos!.data as Float32Array)],
      Array.from({ length: T }, (_, i) => i),
    );
    assert.equal((r.count!.data as Float32Array)[0], (P + 1) * B);
    assert.deepEqual(r.kv!.shape, [B, P + 1, 4]);
  }
});

test('outputs: inputs, constants and repeated values are aliased with Identity', async () => {
  const g = new Graph({ name: 'outputs' });
  const x = g.input('x', 'float32', [2]);
  const y = x.mul(3);
  g.output('y', y);
  g.output('y_again', y);
  g.output('x_out', x);
  g.output('k', g.constant([1, 2], [2]));
  throwsShape(() => g.output('y', y), 'output', "'y'");
  const r = await (await createSession(g, { threads: 1 })).run({
    x: tensor('float32', [2], Float32Array.of(1, 2)),
  });
  assert.deepEqual([...(r.y!.data as Float32Array)], [3, 6]);
  assert.deepEqual([...(r.y_again!.data as Float32Array)], [3, 6]);
  assert.deepEqual([...(r.x_out!.data as Float32Array)], [1, 2]);
  assert.deepEqual([...(r.k!.data as Float32Array)], [1, 2]);
});

test('nodes no output needs are pruned from the model', () => {
  const g = new Graph({ name: 'prune' });
  const x = g.input('x', 'float32', [2, 2]);
  x.exp().log().tanh(); // dead branch
  g.output('y', x.sigmoid());
  const ops = toModelProto(g).graph!.node!.map((n) => n.opType);
  assert.deepEqual(ops, ['Sigmoid']);
  assert.throws(() => toModelProto(new Graph()), ShapeError);
});

test('IK_DUMP_GRAPH writes every serialised model and a readable listing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-dump-'));
  process.env.IK_DUMP_GRAPH = dir;
  try {
    const g = new Graph({ name: 'dumped' });
    const x = g.input('x', 'float32', [1, 2]);
    g.output(
      'y',
      x.matmul(g.param('w', [2, 2]).reshape([2, 2]).unsqueeze([0]).squeeze([0])).relu(),
    );
    const bytes = toBytes(g);
    const files = readdirSync(dir).sort();
    assert.equal(files.length, 2);
    assert.ok(files[0]!.startsWith('dumped-') && files[0]!.endsWith('.onnx'));
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, files[0]!))), bytes);
    const txt = readFileSync(join(dir, files[1]!), 'utf8');
    assert.ok(txt.includes('input  w [2,2]') && txt.includes('Relu('), txt);
  } finally {
    delete process.env.IK_DUMP_GRAPH;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('describe lists inputs, outputs and nodes', () => {
  const g = new Graph({ name: 'desc' });
  const x = g.input('x', 'float32', ['B', 4]);
  g.output('y', x.matmul(g.param('w', [4, 3]), { transB: false, alpha: 2 }));
  const txt = describe(toModelProto(g));
  assert.match(txt, /input {2}x \[B,4\]/);
  assert.match(txt, /com\.microsoft\.FusedMatMul\(x, w\) -> y/);
});
