// Reward sources: the built-in exact match, a TypeScript module (good, throwing, non-number:
// each error names the module and the record), weights and missing_eos_penalty, a reward model
// directory scoring prompt + completion, and a judge endpoint (answers; refuses → retries, then
// a clear error).
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CausalLM } from '../../src/models/lm.ts';
import { RewardModel } from '../../src/models/reward.ts';
import {
  exactMatchReward,
  judgeReward,
  loadRewardSources,
  moduleReward,
  RewardError,
  RewardFunc,
  type RewardInput,
  scoreRewards,
} from '../../src/train/rewards.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { smallSpec, tokenizer } from './tiny.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-rewards-'));
const input = (completion: string, reference: unknown, eos = true, index = 0): RewardInput => ({
  prompt: 'Q: colour?\nA:',
  completion,
  record: { reference },
  index,
  eos,
});

test('exact match: normalised against a reference or a list; a record without one is named', async () => {
  const em = exactMatchReward();
  assert.deepEqual(
    await em.score([input(' Red.', 'red'), input('blue', 'red'), input('Green', ['x', 'green'])]),
    [1, 0, 1],
  );
  await assert.rejects(em.score([input('a', undefined, true, 17)]), (e: unknown) => {
    assert.ok(e instanceof RewardError);
    assert.match(e.message, /record 17/);
    assert.match(e.message, /reference/);
    return true;
  });
});

test('module rewards: loaded by path; throwing or non-number rewards name the module and the record', async () => {
  const good = join(dir, 'good.ts');
  writeFileSync(
    good,
    'export function reward(p: string, c: string, r: { n: number }): number { return c.length + r.n; }\n',
  );
  const src = await moduleReward(good);
  assert.deepEqual(await src.score([{ ...input('abc', 'x'), record: { n: 2 } }]), [5]);
  const throws = join(dir, 'throws.mjs');
  writeFileSync(throws, 'export async function reward() { throw new Error("boom"); }\n');
  await assert.rejects(
    (await moduleReward(throws)).score([input('a', 'b', true, 3)]),
    (e: unknown) => {
      assert.ok(e instanceof RewardError);
      assert.ok(e.message.includes(throws), e.message);
      assert.match(e.message, /record 3: threw: boom/);
      return true;
    },
  );
  for (const [name, body, shown] of [
    ['string.mjs', 'return "1";', '"1"'],
    ['nan.mjs', 'return NaN;', 'NaN'],
    ['undef.mjs', 'return undefined;', 'undefined'],
  ] as const) {
    const f = join(dir, name);
    writeFileSync(f, `export function reward() { ${body} }\n`);
    await assert.rejects(
      (await moduleReward(f)).score([input('a', 'b', true, 9)]),
      (e: unknown) => {
        assert.ok(e instanceof RewardError);
        assert.ok(e.message.includes(f) && e.message.includes('record 9'), e.message);
        assert.ok(e.message.includes(`returned ${shown}, not a finite number`), e.message);
        return true;
      },
    );
  }
  await assert.rejects(moduleReward(join(dir, 'missing.ts')), ConfigError);
  const noExport = join(dir, 'noexport.mjs');
  writeFileSync(noExport, 'export const x = 1;\n');
  await assert.rejects(moduleReward(noExport), /does not export a function 'reward'/);
});

test('weighted sum, then missing_eos_penalty on completions without EOS', async () => {
  const em = exactMatchReward();
  const len = {
    name: 'len',
    score: async (b: readonly RewardInput[]) => b.map((x) => x.completion.length),
  };
  const r = await scoreRewards(
    [em, len],
    [input('red', 'red', true), input('red', 'red', false), input('xx', 'red', false)],
    { weights: [2, 0.5], missing_eos_penalty: 1 },
  );
  assert.deepEqual([...r.total], [2 + 1.5, 2 + 1.5 - 1, 0 + 1 - 1]);
  assert.deepEqual([...r.bySource.get('len')!], [3, 3, 2]);
  await assert.rejects(scoreRewards([em], [input('a', 'a')], { weights: [1, 2] }), ConfigError);
});

test('reward config: unknown keys in a reward function are errors', () => {
  assert.equal(RewardFunc.safeParse({ type: 'exact_match', fields: 'x' }).success, false);
  assert.equal(RewardFunc.safeParse({ type: 'module', path: 'r.ts' }).success, true);
});

test('a reward model directory scores prompt + completion as RewardModel.score does', async () => {
  const rm = RewardModel.fromCausalLM(CausalLM.random(smallSpec(64), 1, tokenizer), 2);
  const rmDir = join(dir, 'rm');
  await rm.save(rmDir);
  const [src] = await loadRewardSources([{ type: 'model', path: rmDir, batch_size: 2 }]);
  const xs = [input(' red', 'red', true), input(' blue and', 'red', false)];
  const got = await src!.score(xs);
  const eos = tokenizer.eos!.id;
  const enc = (s: string) => tokenizer.encode(s, { addSpecialTokens: false });
  const want = await rm.score([
    [...enc(xs[0]!.prompt), ...enc(' red'), eos],
    [...enc(xs[1]!.prompt), ...enc(' blue and')],
  ]);
  for (let i = 0; i < 2; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5, `${got} vs ${want}`);
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}

test('judge endpoint: the reply number / scale is the reward; cached on disk', async () => {
  let calls = 0;
  const server = createServer((req, res) => {
    calls++;
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const content = JSON.parse(body).messages[0].content as string;
      const score = content.includes('Response:\nred') ? '9' : '2';
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          choices: [
            { index: 0, message: { role: 'assistant', content: score }, finish_reason: 'stop' },
          ],
        }),
      );
    });
  });
  const base = await listen(server);
  try {
    const cfg = RewardFunc.parse({
      type: 'judge',
      client: { endpoints: [{ base_url: base }], model: 'judge', cache_dir: join(dir, 'jc') },
    }) as Extract<RewardFunc, { type: 'judge' }>;
    const j = judgeReward(cfg);
    assert.deepEqual(await j.score([input('red', 'red'), input('blue', 'red')]), [0.9, 0.2]);
    const again = judgeReward(cfg);
    assert.deepEqual(await again.score([input('red', 'red')]), [0.9]);
    assert.equal(calls, 2);
  } finally {
    server.close();
  }
});

test('judge endpoint refusing connections (nothing listening): retries, then a RewardError', async () => {
  const probe = createServer();
  const base = await listen(probe);
  await new Promise<void>((r) => probe.close(() => r()));
  const cfg = RewardFunc.parse({
    type: 'judge',
    client: {
      endpoints: [{ base_url: base }],
      model: 'judge',
      max_retries: 1,
      backoff_initial_ms: 1,
    },
  }) as Extract<RewardFunc, { type: 'judge' }>;
  await assert.rejects(judgeReward(cfg).score([input('red', 'red', true, 0)]), (e: unknown) => {
    assert.ok(e instanceof RewardError);
    assert.match(e.message, /giving up after 2 attempts/);
    return true;
  });
});

test('judge endpoint that closes every connection: retries, then a RewardError naming it and the record', async () => {
  let calls = 0;
  const server = createServer((req) => {
    calls++;
    req.socket.destroy();
  });
  const base = await listen(server);
  try {
    const cfg = RewardFunc.parse({
      type: 'judge',
      client: {
        endpoints: [{ base_url: base }],
        model: 'judge',
        max_retries: 2,
        backoff_initial_ms: 1,
        backoff_max_ms: 2,
      },
    }) as Extract<RewardFunc, { type: 'judge' }>;
    await assert.rejects(judgeReward(cfg).score([input('red', 'red', true, 4)]), (e: unknown) => {
      assert.ok(e instanceof RewardError);
      assert.ok(e.message.includes(base), e.message);
      assert.match(e.message, /record 4/);
      assert.match(e.message, /giving up after 3 attempts/);
      return true;
    });
    assert.equal(calls, 3);
  } finally {
    server.close();
  }
});
