// PPO's host arithmetic: GAE against hand-computed values, rewards / advantages / returns /
// objective metrics against TRL's code run in torch (scripts/fixtures/ppo_torch.py), and the
// adaptive KL controller of Ziegler et al.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  gae,
  KlController,
  klPerToken,
  maskedWhiten,
  ppoTargets,
  shapeRewards,
} from '../../src/train/ppo-math.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { fixture } from '../helpers/shared.ts';

interface Case {
  B: number;
  T: number;
  kl_coef: number;
  kl_estimator: 'k1' | 'k3';
  whiten_rewards: boolean;
  gamma: number;
  lam: number;
  mask: number[];
  logprobs: number[];
  ref_logprobs: number[];
  values: number[];
  scores: number[];
  rewards: number[];
  advantages: number[];
  returns: number[];
  objective: Record<string, number>;
}
const FIX = JSON.parse(readFileSync(fixture('train', 'ppo_torch.json'), 'utf8')) as {
  cases: Case[];
};

const close = (a: number, b: number, what: string, tol = 1e-9): void => {
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${what}: ${a} vs ${b}`);
};
const closeAll = (a: ArrayLike<number>, b: ArrayLike<number>, what: string, tol = 1e-9) => {
  assert.equal(a.length, b.length, `${what} length`);
  for (let i = 0; i < b.length; i++) close(a[i]!, b[i]!, `${what}[${i}]`, tol);
};

test('GAE matches hand-computed advantages and returns; padding is terminal and ignored', () => {
  // Row 0: rewards [0, 0, 1], V [0.5, 0.2, 0.4]; γ 1, λ 0.95:
  //   A2 = 1 − 0.4 = 0.6; A1 = (0 + 0.4 − 0.2) + 0.95·0.6 = 0.77; A0 = (0.2 − 0.5) + 0.95·0.77 = 0.4315.
  // Row 1 (length 2; the pad value 9 must not leak in): A1 = −1 − 2 = −3; A0 = (0.5 + 2 − 1) + 0.95·(−3) = −1.35.
  const g = { B: 2, T: 3, mask: [1, 1, 1, 1, 1, 0] };
  const r = gae(g, [0, 0, 1, 0.5, -1, 0], [0.5, 0.2, 0.4, 1, 2, 9], 1, 0.95);
  closeAll(r.advantages, [0.4315, 0.77, 0.6, -1.35, -3, 0], 'A', 1e-12);
  closeAll(r.returns, [0.9315, 0.97, 1, -0.35, -1, 0], 'R', 1e-12);
  // γ 0.5, λ 1: A2 = 0.6; A1 = (0.5·0.4 − 0.2) + 0.5·0.6 = 0.3; A0 = (0.5·0.2 − 0.5) + 0.5·0.3 = −0.25.
  const h = gae({ B: 1, T: 3, mask: [1, 1, 1] }, [0, 0, 1], [0.5, 0.2, 0.4], 0.5, 1);
  closeAll(h.advantages, [-0.25, 0.3, 0.6], 'A(γ .5)', 1e-12);
});

test('the score lands on the last real token, not the first pad (trl#3750)', () => {
  const g = { B: 2, T: 4, mask: [1, 1, 0, 0, 1, 1, 1, 1] };
  const lp = [-1, -2, 1, 1, -1, -1, -1, -1];
  const r = shapeRewards(g, {
    logprobs: lp,
    refLogprobs: lp,
    scores: [3, -2],
    klCoef: 0.1,
    estimator: 'k1',
  });
  assert.deepEqual([...r.rewards], [0, 3, 0, 0, 0, 0, 0, -2]);
  assert.throws(
    () =>
      shapeRewards(
        { B: 1, T: 2, mask: [0, 0] },
        { logprobs: [0, 0], refLogprobs: [0, 0], scores: [1], klCoef: 0.1, estimator: 'k1' },
      ),
    ConfigError,
  );
});

test('k1 is log π − log π_ref; k3 is never negative and 0 only at equality', () => {
  close(klPerToken(-1, -1.5, 'k1'), 0.5, 'k1');
  close(klPerToken(-1.5, -1, 'k1'), -0.5, 'k1 negative');
  for (const [a, b] of [
    [-1, -1.5],
    [-1.5, -1],
    [-0.1, -4],
  ] as const) {
    const logr = b - a;
    close(klPerToken(a, b, 'k3'), Math.exp(logr) - 1 - logr, 'k3', 1e-12);
    assert.ok(klPerToken(a, b, 'k3') > 0);
  }
  assert.equal(klPerToken(-2, -2, 'k3'), 0);
});

test('masked whitening: mean 0 and unbiased variance 1 over real tokens, 0 on padding', () => {
  const x = [1, 2, 3, 100, 5, 7];
  const m = [1, 1, 1, 0, 1, 1];
  const w = maskedWhiten(x, m);
  assert.equal(w[3], 0);
  const real = [0, 1, 2, 4, 5].map((i) => w[i]!);
  const mean = real.reduce((a, b) => a + b) / 5;
  const v = real.reduce((a, b) => a + (b - mean) ** 2, 0) / 4;
  close(mean, 0, 'mean', 1e-12);
  close(v, 1, 'var', 1e-6);
  // shift_mean = false keeps the mean (whiten_rewards keeps a reward's sign information).
  const k = maskedWhiten(x, m, false);
  close(k[0]! - w[0]!, 18 / 5, 'shift');
});

for (const [i, c] of FIX.cases.entries()) {
  test(`rewards, GAE advantages, returns and objective metrics match TRL in torch (case ${i}: ${c.kl_estimator}, whiten_rewards ${c.whiten_rewards})`, () => {
    const r = ppoTargets(
      { B: c.B, T: c.T, mask: c.mask },
      {
        logprobs: c.logprobs,
        refLogprobs: c.ref_logprobs,
        values: c.values,
        scores: c.scores,
        klCoef: c.kl_coef,
        estimator: c.kl_estimator,
        gamma: c.gamma,
        lam: c.lam,
        whitenRewards: c.whiten_rewards,
      },
    );
    closeAll(r.rewards, c.rewards, 'rewards');
    closeAll(r.advantages, c.advantages, 'advantages', 1e-7);
    closeAll(r.returns, c.returns, 'returns');
    for (const [k, v] of Object.entries(c.objective)) close(r.metrics[k]!, v, k);
  });
}

test('adaptive KL controller (Ziegler et al. 2019): proportional, clipped at ±20%, fixed when not adaptive', () => {
  const a = new KlController(0.05, { target: 6, horizon: 10000 });
  a.update(9, 512); // e = min(0.2, 0.5) = 0.2 → β·(1 + 0.2·512/10000)
  close(a.value, 0.05 * (1 + (0.2 * 512) / 10000), 'up', 1e-12);
  const b = new KlController(0.05, { target: 6, horizon: 10000 });
  b.update(5.4, 100); // e = −0.1
  close(b.value, 0.05 * (1 - (0.1 * 100) / 10000), 'down', 1e-12);
  const f = new KlController(0.05);
  f.update(100, 512);
  assert.equal(f.value, 0.05);
});
