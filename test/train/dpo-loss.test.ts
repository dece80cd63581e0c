// DPO-family and ORPO losses against torch (scripts/fixtures/dpo_torch.py → dpo_torch.json):
// loss, gradients w.r.t. the per-sequence policy log-probs and the logged metrics; and the
// known answers at initialisation (policy = reference).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { grad } from '../../src/engine/autodiff.ts';
import { Graph, type Var } from '../../src/engine/graph.ts';
import { createSession, tensor } from '../../src/engine/runtime.ts';
import {
  type DpoLossType,
  dpoLoss,
  type LossOut,
  logSigmoid,
  orpoLoss,
  type PairLogps,
} from '../../src/train/dpo-loss.ts';
import { fixture } from '../helpers/shared.ts';

interface DpoCase {
  name: string;
  loss_type: DpoLossType[];
  loss_weights?: number[];
  beta: number;
  label_smoothing: number;
  inputs: Record<string, number[]>;
  loss: number;
  grad_chosen: number[];
  grad_rejected: number[];
  metrics: Record<string, number>;
}
interface OrpoCase {
  beta: number;
  inputs: Record<string, number[]>;
  loss: number;
  grad_chosen: number[];
  grad_rejected: number[];
  nll_loss: number;
  log_odds_ratio: number;
  log_odds_chosen: number;
}
const FIX = JSON.parse(readFileSync(fixture('train', 'dpo_torch.json'), 'utf8')) as {
  dpo: DpoCase[];
  orpo: OrpoCase[];
};

/** Builds the loss over float64 inputs [P], runs it with its gradients w.r.t. chosen/rejected. */
async function run(
  values: Record<string, number[]>,
  build: (x: Record<string, Var>) => LossOut,
): Promise<{ loss: number; dc: number[]; dr: number[]; m: Record<string, number> }> {
  const g = new Graph({ name: 'dpo-loss' });
  const P = values.chosen!.length;
  const x: Record<string, Var> = {};
  for (const k of Object.keys(values)) x[k] = g.input(k, 'float64', [P]);
  const out = build(x);
  const [dc, dr] = grad(out.loss, [x.chosen!, x.rejected!]);
  g.output('loss', out.loss);
  g.output('dc', dc ?? g.constant(new Float64Array(P), [P], 'float64'));
  g.output('dr', dr ?? g.constant(new Float64Array(P), [P], 'float64'));
  for (const [k, v] of Object.entries(out.metrics)) g.output(k, v);
  const s = await createSession(g);
  const feeds = Object.fromEntries(
    Object.entries(values).map(([k, v]) => [k, tensor('float64', [P], Float64Array.from(v))]),
  );
  const r = await s.run(feeds);
  await s.release();
  const num = (k: string) => Number((r[k]!.data as Float64Array)[0]);
  return {
    loss: num('loss'),
    dc: [...(r.dc!.data as Float64Array)],
    dr: [...(r.dr!.data as Float64Array)],
    m: Object.fromEntries(Object.keys(out.metrics).map((k) => [k, num(k)])),
  };
}

const pair = (x: Record<string, Var>): PairLogps => ({
  chosen: x.chosen!,
  rejected: x.rejected!,
  chosenTokens: x.chosen_tokens!,
  rejectedTokens: x.rejected_tokens!,
});

const close = (a: number, b: number, what: string, tol = 1e-9): void => {
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${what}: ${a} vs torch ${b}`);
};

for (const c of FIX.dpo) {
  test(`DPO ${c.name} (${c.loss_type.join('+')}, β ${c.beta}, ε ${c.label_smoothing}): loss, gradients and metrics match torch`, async () => {
    const r = await run(c.inputs, (x) =>
      dpoLoss(
        pair(x),
        { chosen: x.ref_chosen!, rejected: x.ref_rejected! },
        {
          beta: c.beta,
          lossTypes: c.loss_type,
          lossWeights: c.loss_weights,
          labelSmoothing: c.label_smoothing,
        },
      ),
    );
    close(r.loss, c.loss, 'loss');
    for (const [i, v] of c.grad_chosen.entries()) close(r.dc[i]!, v, `dL/dπ_c[${i}]`);
    for (const [i, v] of c.grad_rejected.entries()) close(r.dr[i]!, v, `dL/dπ_r[${i}]`);
    for (const [k, v] of Object.entries(c.metrics)) close(r.m[k]!, v, k);
  });
}

for (const c of FIX.orpo) {
  test(`ORPO β ${c.beta}: loss, gradients, nll and log-odds match torch`, async () => {
    const r = await run(c.inputs, (x) => orpoLoss(pair(x), { beta: c.beta }));
    close(r.loss, c.loss, 'loss');
    for (const [i, v] of c.grad_chosen.entries()) close(r.dc[i]!, v, `dL/dπ_c[${i}]`);
    for (const [i, v] of c.grad_rejected.entries()) close(r.dr[i]!, v, `dL/dπ_r[${i}]`);
    close(r.m.nll_loss!, c.nll_loss, 'nll_loss');
    close(r.m.log_odds_ratio!, c.log_odds_ratio, 'log_odds_ratio');
    close(r.m.log_odds_chosen!, c.log_odds_chosen, 'log_odds_chosen');
  });
}

// Policy = reference: Δ = 0 for every pair.
const atInit = {
  chosen: [-3, -7.5, -12],
  rejected: [-4, -2.5, -9],
  ref_chosen: [-3, -7.5, -12],
  ref_rejected: [-4, -2.5, -9],
  chosen_tokens: [2, 5, 7],
  rejected_tokens: [3, 1, 6],
};
const KNOWN: [DpoLossType, number, number][] = [
  ['sigmoid', 0.1, Math.LN2],
  ['hinge', 0.1, 1],
  ['ipo', 0.1, 25], // (1/(2β))²
  ['ipo', 0.25, 4],
  ['robust', 0.1, Math.LN2],
];
for (const [t, beta, want] of KNOWN) {
  test(`known answer at init: ${t} (β ${beta}) = ${want}`, async () => {
    const r = await run(atInit, (x) =>
      dpoLoss(
        pair(x),
        { chosen: x.ref_chosen!, rejected: x.ref_rejected! },
        { beta, lossTypes: [t], labelSmoothing: t === 'robust' ? 0.2 : 0 },
      ),
    );
    close(r.loss, want, t, 1e-12);
    // Implicit rewards are 0, so no pair is (strictly) ranked right yet.
    assert.equal(r.m['rewards/accuracies'], 0);
    assert.equal(r.m['rewards/margins'], 0);
  });
}

test('known answer: ORPO with identical chosen and rejected = NLL + β ln 2', async () => {
  const same = {
    chosen: [-3, -8],
    rejected: [-3, -8],
    chosen_tokens: [3, 4],
    rejected_tokens: [3, 4],
  };
  const r = await run(same, (x) => orpoLoss(pair(x), { beta: 0.1 }));
  const nll = 11 / 7;
  close(r.loss, nll + 0.1 * Math.LN2, 'orpo', 1e-12);
  close(r.m.nll_loss!, nll, 'nll', 1e-12);
});

test('logSigmoid is finite and exact far out, with gradient ½ at 0', async () => {
  const xs = [-200, -30, -1, 0, 1, 30, 200];
  const g = new Graph({ name: 'logsig' });
  const x = g.input('x', 'float64', [xs.length]);
  const y = logSigmoid(x);
  const [dx] = grad(y.sum(), [x]);
  g.output('y', y);
  g.output('dx', dx!);
  const s = await createSession(g);
  const r = await s.run({ x: tensor('float64', [xs.length], Float64Array.from(xs)) });
  await s.release();
  const y0 = r.y!.data as Float64Array;
  const d0 = r.dx!.data as Float64Array;
  xs.forEach((v, i) => {
    const want = v < 0 ? v - Math.log1p(Math.exp(v)) : -Math.log1p(Math.exp(-v));
    close(y0[i]!, want, `logσ(${v})`, 1e-12);
    close(d0[i]!, 1 / (1 + Math.exp(v)), `dlogσ(${v})`, 1e-12);
  });
});
