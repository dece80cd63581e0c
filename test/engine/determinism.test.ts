// The embedding gradient must not depend on thread timing: ORT's ScatterND(add) races on
// repeated rows with 2 threads, so gather's vjp sums the rows of each distinct id with a
// one-hot GEMM. Repeated runs of the same step must give bit-identical gradients.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grad } from '../../src/engine/autodiff.ts';
import { Graph } from '../../src/engine/graph.ts';
import { gather, mul, reduceSum } from '../../src/engine/ops.ts';
import { createSession, tensor } from '../../src/engine/runtime.ts';
import { Rng } from '../../src/util/rng.ts';

test('embedding gradients are bit-identical across runs with 2 threads', async () => {
  const V = 1024;
  const D = 256;
  const [B, T] = [8, 128];
  const g = new Graph({ name: 'embedding-determinism' });
  const W = g.param('W', [V, D]);
  const ids = g.input('ids', 'int64', [B, T]);
  const up = g.input('up', 'float32', [B, T, D]);
  const [dW] = grad(reduceSum(mul(gather(W, ids, 0), up)), [W]);
  g.output('dW', dW!);
  const s = await createSession(g, { threads: 2 });
  const rng = new Rng(3);
  // Zipf-like ids, as in text: a few rows are hit hundreds of times.
  const zipf = () => Math.min(V - 1, Math.floor(1 / (rng.float() + 1e-3)) - 1);
  const feeds = {
    W: tensor(
      'float32',
      [V, D],
      Float32Array.from({ length: V * D }, () => rng.normal()),
    ),
    ids: tensor(
      'int64',
      [B, T],
      BigInt64Array.from({ length: B * T }, () => BigInt(zipf())),
    ),
    up: tensor(
      'float32',
      [B, T, D],
      Float32Array.from({ length: B * T * D }, () => rng.normal()),
    ),
  };
  const first = (await s.run(feeds)).dW!.data as Float32Array;
  // The gradient is the sum of upstream rows per id.
  const idv = feeds.ids.data as BigInt64Array;
  const upv = feeds.up.data as Float32Array;
  let want0 = 0;
  for (let n = 0; n < B * T; n++) if (idv[n] === 0n) want0 += upv[n * D]!;
  assert.ok(Math.abs(first[0]! - want0) < 1e-3);
  for (let k = 0; k < 8; k++) {
    const again = (await s.run(feeds)).dW!.data as Float32Array;
    assert.ok(
      again.every((v, i) => v === first[i]),
      `run ${k + 2} differs`,
    );
  }
});
