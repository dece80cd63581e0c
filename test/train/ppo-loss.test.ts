// PPO's clipped policy and value losses against TRL's code in torch
// (scripts/fixtures/ppo_torch.py → ppo_torch.json): loss, gradients w.r.t. the new log-probs and
// values, and the logged metrics; and the known answers of a first update (policy = rollout
// policy: ratio 1, clip fraction 0, approx KL 0).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { grad } from '../../src/engine/autodiff.ts';
import { Graph, type Var } from '../../src/engine/graph.ts';
import { createSession, tensor } from '../../src/engine/runtime.ts';
import { type PpoLossOptions, ppoLoss, ptxLoss } from '../../src/train/ppo-loss.ts';
import { fixture } from '../helpers/shared.ts';

interface Case {
  B: number;
  T: number;
  cliprange: number;
  cliprange_value: number;
  vf_coef: number;
  mask: number[];
  logprobs: number[];
  values: number[];
  advantages: number[];
  returns: number[];
  new_logprobs: number[];
  vpred: number[];
  loss: number;
  pg_loss: number;
  vf_loss: number;
  grad_logprobs: number[];
  grad_values: number[];
  metrics: Record<string, number>;
}
const FIX = JSON.parse(readFileSync(fixture('train', 'ppo_torch.json'), 'utf8')) as {
  cases: Case[];
};

const close = (a: number, b: number, what: string, tol = 1e-9): void => {
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${what}: ${a} vs torch ${b}`);
};

const NAMES = ['logprobs', 'oldLogprobs', 'advantages', 'values', 'oldValues', 'returns', 'mask'];

async function run(
  B: number,
  T: number,
  feeds: Record<string, number[]>,
  o: PpoLossOptions,
): Promise<{ loss: number; dlp: number[]; dv: number[]; m: Record<string, number> }> {
  const g = new Graph({ name: 'ppo-loss' });
  const x: Record<string, Var> = {};
  for (const k of NAMES) x[k] = g.input(k, 'float64', [B, T]);
  const out = ppoLoss(
    {
      logprobs: x.logprobs!,
      oldLogprobs: x.oldLogprobs!,
      advantages: x.advantages!,
      values: x.values!,
      oldValues: x.oldValues!,
      returns: x.returns!,
      mask: x.mask!,
    },
    o,
  );
  const [dlp, dv] = grad(out.loss, [x.logprobs!, x.values!]);
  g.output('loss', out.loss);
  g.output('dlp', dlp!);
  g.output('dv', dv!);
  for (const [k, v] of Object.entries(out.metrics)) g.output(k, v);
  const s = await createSession(g);
  const r = await s.run(
    Object.fromEntries(
      NAMES.map((k) => [k, tensor('float64', [B, T], Float64Array.from(feeds[k]!))]),
    ),
  );
  await s.release();
  const num = (k: string) => Number((r[k]!.data as Float64Array)[0]);
  return {
    loss: num('loss'),
    dlp: [...(r.dlp!.data as Float64Array)],
    dv: [...(r.dv!.data as Float64Array)],
    m: Object.fromEntries(Object.keys(out.metrics).map((k) => [k, num(k)])),
  };
}

for (const [i, c] of FIX.cases.entries()) {
  test(`PPO losses, gradients and metrics match TRL in torch (case ${i}: cliprange ${c.cliprange}, cliprange_value ${c.cliprange_value}, vf_coef ${c.vf_coef})`, async () => {
    const r = await run(
      c.B,
      c.T,
      {
        logprobs: c.new_logprobs,
        oldLogprobs: c.logprobs,
        advantages: c.advantages,
        values: c.vpred,
        oldValues: c.values,
        returns: c.returns,
        mask: c.mask,
      },
      { cliprange: c.cliprange, cliprangeValue: c.cliprange_value, vfCoef: c.vf_coef },
    );
    close(r.loss, c.loss, 'loss');
    c.grad_logprobs.forEach((v, j) => {
      close(r.dlp[j]!, v, `dL/dlogπ[${j}]`);
    });
    c.grad_values.forEach((v, j) => {
      close(r.dv[j]!, v, `dL/dV[${j}]`);
    });
    for (const [k, v] of Object.entries(c.metrics)) close(r.m[k]!, v, k);
    // The fixture must exercise both sides of each clip, or this test could not fail on them.
    assert.ok(i === 3 || c.metrics['policy/clipfrac_avg']! > 0, 'some policy tokens clipped');
    assert.ok(c.metrics['val/clipfrac_avg']! > 0, 'some values clipped');
  });
}

test('first update (new = old log-probs): ratio 1, clipfrac 0, approxkl 0, loss = −mean A + vf', async () => {
  const B = 2;
  const T = 3;
  const lp = [-1, -2, -0.5, -3, -0.1, 1];
  const adv = [0.5, -1, 2, 1, -0.3, 0];
  const mask = [1, 1, 1, 1, 1, 0];
  const r = await run(
    B,
    T,
    {
      logprobs: lp,
      oldLogprobs: lp,
      advantages: adv,
      values: [0, 0, 0, 0, 0, 0],
      oldValues: [0, 0, 0, 0, 0, 0],
      returns: [1, 1, 1, 1, 1, 0],
      mask,
    },
    { cliprange: 0.2, cliprangeValue: 0.2, vfCoef: 0.1 },
  );
  assert.equal(r.m['val/ratio'], 1);
  assert.equal(r.m['policy/clipfrac_avg'], 0);
  assert.equal(r.m['policy/approxkl_avg'], 0);
  close(r.m['loss/policy_avg']!, -(0.5 - 1 + 2 + 1 - 0.3) / 5, 'pg', 1e-12);
  // V = 0, V_old = 0, R = 1: the clipped value is 0 too, so vf = ½·1.
  close(r.m['loss/value_avg']!, 0.5, 'vf', 1e-12);
  // The unclipped surrogate's gradient is −A/n at every real token and 0 on padding.
  r.dlp.forEach((d, j) => {
    close(d, mask[j] ? -adv[j]! / 5 : 0, `dlogπ[${j}]`, 1e-12);
  });
});

test('PPO-ptx adds −γ · mean log-prob of the pretraining tokens', async () => {
  const g = new Graph({ name: 'ptx' });
  const lp = g.input('lp', 'float64', [1, 4]);
  const m = g.input('m', 'float64', [1, 4]);
  g.output('l', ptxLoss(lp, m, 27.8));
  const s = await createSession(g);
  const r = await s.run({
    lp: tensor('float64', [1, 4], Float64Array.of(-1, -2, -3, 9)),
    m: tensor('float64', [1, 4], Float64Array.of(1, 1, 1, 0)),
  });
  await s.release();
  close(Number((r.l!.data as Float64Array)[0]), 27.8 * 2, 'ptx', 1e-12);
});
