// Training in a worker thread: same trajectory as in-process, the main event loop keeps
// ticking while steps run (and does not in-process, which is why the worker exists), typed
// errors cross the boundary, state / load / readParams round-trip, transfer and release.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Graph, Var } from '../../src/engine/graph.ts';
import { ParamStore } from '../../src/engine/params.ts';
import { tensor } from '../../src/engine/runtime.ts';
import { createTrainer, type Feeds, type Trainer } from '../../src/engine/step.ts';
import { createWorkerTrainer } from '../../src/engine/worker.ts';
import { ShapeError, TrainingError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

function small() {
  const params = ParamStore.create(
    [
      { name: 'w', shape: [4, 6], init: { kind: 'normal', std: 0.5 } },
      { name: 'b', shape: [4] },
      { name: 'frozen', shape: [4], init: { kind: 'ones' }, frozen: true },
    ],
    { seed: 3 },
  );
  const build = (g: Graph, p: Readonly<Record<string, Var>>) => {
    const x = g.input('x', 'float32', ['B', 6]);
    const y = g.input('y', 'float32', ['B', 4]);
    const pred = x.matmul(p.w!, { transB: true }).add(p.b!).mul(p.frozen!);
    const err = pred.sub(y);
    return { loss: err.mul(err).mean(), outputs: { pred } };
  };
  return { params, build, optimizer: { type: 'adamw' as const, learning_rate: 0.05 } };
}

function feeds(seed: number, b = 5): Feeds {
  const r = new Rng(seed);
  return {
    x: tensor(
      'float32',
      [b, 6],
      new Float32Array(b * 6).map(() => r.normal()),
    ),
    y: tensor(
      'float32',
      [b, 4],
      new Float32Array(b * 4).map(() => r.normal()),
    ),
  };
}

test('the worker trainer follows the in-process trajectory bit for bit', async () => {
  const local = await createTrainer({ ...small(), session: { threads: 1 } });
  const remote = await createWorkerTrainer({ ...small(), session: { threads: 1 } });
  for (let i = 0; i < 5; i++) {
    const a = await local.step(feeds(i));
    const b = await remote.step(feeds(i));
    assert.deepEqual(b, { ...a, outputs: b.outputs });
    assert.deepEqual(b.outputs.pred?.data, a.outputs.pred?.data);
    assert.deepEqual(b.outputs.pred?.shape, [5, 4]);
  }
  assert.equal(remote.stepCount, 5);
  const [pa, pb] = [await local.readParams(), await remote.readParams()];
  assert.deepEqual(pb.flat, pa.flat);
  assert.deepEqual(pb.get('frozen'), Float32Array.of(1, 1, 1, 1));
  await local.release();
  await remote.release();
});

test('typed errors cross the thread boundary; the worker stays usable', async () => {
  const t = await createWorkerTrainer({ ...small(), session: { threads: 1 } });
  await t.step(feeds(1));
  const bad = feeds(2);
  (bad.x?.data as Float32Array)[0] = Number.NaN;
  await assert.rejects(t.step(bad), (e: unknown) => {
    assert.ok(e instanceof TrainingError, String(e));
    assert.equal(e.step, 2);
    assert.match(e.message, /^step 2: loss is NaN/);
    assert.match(String(e.hint), /nonFinite/);
    return true;
  });
  await assert.rejects(
    t.step({ x: feeds(3).x! }),
    (e: unknown) =>
      e instanceof ShapeError && e.op === 'feed' && /missing input 'y'/.test(e.message),
  );
  const ok = await t.step(feeds(4));
  assert.equal(ok.step, 2);
  await t.release();
  await assert.rejects(t.step(feeds(5)), /released/);
});

test('state and load round-trip through the worker: resume is exact', async () => {
  const full = await createWorkerTrainer({ ...small(), session: { threads: 1 } });
  for (let i = 0; i < 4; i++) await full.step(feeds(10 + i));
  const want = await full.state();
  const half = await createWorkerTrainer({ ...small(), session: { threads: 1 } });
  for (let i = 0; i < 2; i++) await half.step(feeds(10 + i));
  const saved = await half.state();
  const resumed = await createWorkerTrainer({ ...small(), session: { threads: 1 } });
  await resumed.load(saved);
  assert.equal(resumed.stepCount, 2);
  for (let i = 2; i < 4; i++) await resumed.step(feeds(10 + i));
  const got = await resumed.state();
  assert.deepEqual(got, want);
  await assert.rejects(resumed.load({ ...saved, params: new Float32Array(2) }), ShapeError);
  for (const t of [full, half, resumed]) await t.release();
});

test('transfer: true moves the store buffers into the worker', async () => {
  const s = small();
  const t = await createWorkerTrainer({ ...s, transfer: true, session: { threads: 1 } });
  try {
    assert.equal(s.params.flat.byteLength, 0, 'the flat buffer was moved, not copied');
    assert.equal(s.params.frozen[0]?.data.byteLength, 0, 'frozen buffers too');
    const r = await t.step(feeds(1));
    assert.ok(Number.isFinite(r.loss));
    const p = await t.readParams();
    assert.deepEqual(p.get('frozen'), Float32Array.of(1, 1, 1, 1));
    assert.equal(p.get('w').length, 24);
  } finally {
    await t.release();
  }
});

// A heavier step (~tens of ms) so the event loop's behaviour is visible.
function heavy() {
  const D = 384;
  const params = ParamStore.create(
    [
      { name: 'w1', shape: [4 * D, D], init: { kind: 'normal', std: 0.02 } },
      { name: 'w2', shape: [D, 4 * D], init: { kind: 'normal', std: 0.02 } },
    ],
    { seed: 1 },
  );
  const build = (g: Graph, p: Readonly<Record<string, Var>>) => {
    const x = g.input('x', 'float32', [512, D]);
    const h = x.matmul(p.w1!, { transB: true }).tanh().matmul(p.w2!, { transB: true });
    return { loss: h.sub(x).mul(h.sub(x)).mean() };
  };
  const r = new Rng(2);
  const x = new Float32Array(512 * D).map(() => r.normal());
  return {
    opts: { params, build, optimizer: { type: 'adamw' as const, learning_rate: 1e-3 } },
    feed: { x: tensor('float32', [512, D], x) },
  };
}

/** Largest gap between setInterval(2 ms) ticks while `work` runs, and the work's duration. */
async function gaps(work: () => Promise<void>): Promise<{ maxGap: number; ms: number }> {
  let last = performance.now();
  let maxGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 2);
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  clearInterval(timer);
  return { maxGap, ms };
}

async function run(t: Trainer, feed: Feeds, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await t.step(feed);
  return (performance.now() - t0) / n;
}

test('the main event loop keeps ticking while the worker trains (stalls far shorter than a step)', async (ctx) => {
  const h = heavy();
  const remote = await createWorkerTrainer({ ...h.opts, session: { threads: 1 } });
  await remote.step(h.feed); // warm up
  let perStep = 0;
  const w = await gaps(async () => {
    perStep = await run(remote, h.feed, 6);
  });
  await remote.release();

  // In-process, each run blocks the loop for a whole step: the contrast the worker removes.
  const local = await createTrainer({ ...heavy().opts, session: { threads: 1 } });
  await local.step(h.feed);
  let localStep = 0;
  const l = await gaps(async () => {
    localStep = await run(local, h.feed, 3);
  });
  await local.release();
  ctx.diagnostic(
    `worker: step ${perStep.toFixed(1)} ms, max gap ${w.maxGap.toFixed(1)} ms; ` +
      `in-process: step ${localStep.toFixed(1)} ms, max gap ${l.maxGap.toFixed(1)} ms`,
  );
  assert.ok(
    l.maxGap > 0.8 * localStep,
    `in-process gap ${l.maxGap.toFixed(1)} ms should span a step (${localStep.toFixed(1)} ms)`,
  );
  // Relative, not a fixed number of ms, so a busy machine does not fail it: with the worker the
  // loop's longest stall is a small fraction of a step; in process it is a whole step.
  assert.ok(
    w.maxGap < localStep / 4,
    `event loop stalled ${w.maxGap.toFixed(1)} ms with the worker (a step is ${localStep.toFixed(1)} ms)`,
  );
});
