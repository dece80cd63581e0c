// The per-token value head read from a reward model: at each row's last real token it is the
// reward model's score (the InstructGPT / TRL value initialisation), and it is causal (a value
// does not change with the tokens after it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { segmentMask } from '../../src/engine/attention.ts';
import { Graph, type Var } from '../../src/engine/graph.ts';
import { createSession, tensor } from '../../src/engine/runtime.ts';
import { REWARD_HEAD, tokenHeadForward } from '../../src/models/heads.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { RewardModel } from '../../src/models/reward.ts';
import { smallSpec, tokenizer } from './tiny.ts';

test('per-token values from a reward model: its score at the last real token, causal before it', async () => {
  const rm = RewardModel.fromCausalLM(CausalLM.random(smallSpec(64), 2, tokenizer), 4);
  const rows = [
    [5, 17, 30, 44, 61, 9],
    [5, 17, 30, 12],
  ];
  const want = await rm.score(rows);
  const B = rows.length;
  const T = 6;
  const ids = new BigInt64Array(B * T);
  const pos = new BigInt64Array(B * T);
  const seg = new BigInt64Array(B * T).fill(-1n);
  for (const [b, r] of rows.entries())
    for (const [t, id] of r.entries()) {
      ids[b * T + t] = BigInt(id);
      pos[b * T + t] = BigInt(t);
      seg[b * T + t] = 0n;
    }
  const g = new Graph({ name: 'values' });
  const params = new Map<string, Var>();
  for (const [n, t] of rm.allWeights()) params.set(n, g.input(n, 'float32', t.shape));
  const [vi, vp, vs] = ['ids', 'pos', 'seg'].map((n) => g.input(n, 'int64', [B, T])) as [
    Var,
    Var,
    Var,
  ];
  g.output(
    'v',
    tokenHeadForward(rm.spec, REWARD_HEAD, (n) => params.get(n)!, {
      ids: vi,
      positions: vp,
      bias: segmentMask(vs),
    }),
  );
  const s = await createSession(g);
  const feeds: Record<string, ReturnType<typeof tensor>> = {
    ids: tensor('int64', [B, T], ids),
    pos: tensor('int64', [B, T], pos),
    seg: tensor('int64', [B, T], seg),
  };
  for (const [n, t] of rm.allWeights()) feeds[n] = tensor('float32', t.shape, t.data);
  const v = (await s.run(feeds)).v!.data as Float32Array;
  await s.release();
  assert.ok(Math.abs(v[0 * T + 5]! - want[0]!) < 1e-5, `${v[5]} vs ${want[0]}`);
  assert.ok(Math.abs(v[1 * T + 3]! - want[1]!) < 1e-5, `${v[T + 3]} vs ${want[1]}`);
  // Rows share the prefix 5 17 30: their first three values agree.
  for (let t = 0; t < 3; t++) assert.ok(Math.abs(v[t]! - v[T + t]!) < 1e-5, `t ${t}`);
  assert.notEqual(v[3], v[T + 3]);
});
