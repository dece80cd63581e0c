import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { CapabilityError, EndpointBackend, splitPair } from '../../src/eval/backend.ts';
import { combine, judgePairwise, parseVerdict } from '../../src/eval/judge.ts';
import { evaluateTask } from '../../src/eval/run.ts';
import { makeTask } from '../../src/eval/task.ts';
import { LlmClient } from '../../src/synth/client.ts';
import { fakeLlm, type ScriptedServer, startScriptedServer } from '../synth/scripted-server.ts';

const servers: ScriptedServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});
async function serve(script: Parameters<typeof startScriptedServer>[0]): Promise<ScriptedServer> {
  const s = await startScriptedServer(script);
  servers.push(s);
  return s;
}

/** Echo logprobs with one token per character: lp = -(code % 5 + 1) / 10; 'x' is never greedy. */
function charLogprob(ch: string): number {
  return -((ch.codePointAt(0)! % 5) + 1) / 10;
}
// biome-ignore lint/suspicious/noExplicitAny: request bodies are arbitrary JSON in tests
function echoServer(req: { body: any }) {
  const p = req.body.prompt as string;
  const tokens = [...p];
  let off = 0;
  const text_offset = tokens.map((t) => {
    const o = off;
    off += t.length;
    return o;
  });
  return {
    body: {
      choices: [
        {
          index: 0,
          text: p,
          finish_reason: 'length',
          logprobs: {
            tokens,
            token_logprobs: tokens.map((t, i) => (i === 0 ? null : charLogprob(t))),
            top_logprobs: tokens.map((t) => (t === 'x' ? { y: -0.01 } : { [t]: charLogprob(t) })),
            text_offset,
          },
        },
      ],
    },
  };
}

test('endpoint backend: log-likelihood from echo + logprobs, whitespace moved like the harness', async () => {
  assert.deepEqual(splitPair('Answer: ', 'B'), ['Answer:', ' B']);
  const s = await serve(echoServer);
  const backend = new EndpointBackend(
    new LlmClient({ endpoints: [{ base_url: s.url }], model: 'm' }),
  );
  const [r1, r2] = await backend.loglikelihood([
    { context: 'Q? Answer:', continuation: ' ab' },
    { context: 'Q? Answer: ', continuation: 'ax' },
  ]);
  assert.ok(
    Math.abs(r1!.logprob - (charLogprob(' ') + charLogprob('a') + charLogprob('b'))) < 1e-12,
  );
  assert.equal(r1!.isGreedy, true);
  assert.equal(r2!.isGreedy, false);
  assert.equal(s.requests[0]!.body.echo, true);
  assert.equal(s.requests[0]!.body.max_tokens, 0);

  // A multiple-choice task scored through the endpoint.
  const task = makeTask(
    {
      task: 'mc',
      doc_to_text: '{{ q }}',
      doc_to_choice: ['aa', 'bb', 'cc'],
      doc_to_target: 'gold',
      output_type: 'multiple_choice',
      metric_list: [{ metric: 'acc' }, { metric: 'acc_norm' }],
    },
    [
      { q: 'Pick', gold: 0 },
      { q: 'Pick', gold: 2 },
    ],
  );
  const res = await evaluateTask(task, backend);
  assert.equal(res.examples[0]!.prediction, 'aa');
  assert.equal(res.metrics.acc, 0.5);
  // Equal lengths: normalising cannot change the choice.
  assert.equal(res.metrics.acc_norm, 0.5);

  // Choices of different lengths, by hand: ll(' a') = -0.3 - 0.3 = -0.6 and
  // ll(' dddd') = -0.3 + 4 * -0.1 = -0.7, so acc picks 'a'; per character -0.6 / 1 < -0.7 / 4,
  // so acc_norm picks 'dddd'.
  const norm = makeTask(
    {
      task: 'mc_norm',
      doc_to_text: '{{ q }}',
      doc_to_choice: ['a', 'dddd'],
      doc_to_target: 'gold',
      output_type: 'multiple_choice',
      metric_list: [{ metric: 'acc' }, { metric: 'acc_norm' }],
    },
    [
      { q: 'Pick', gold: 1 },
      { q: 'Pick', gold: 0 },
    ],
  );
  const rn = await evaluateTask(norm, backend);
  const lls = rn.examples[0]!.lls!;
  assert.ok(Math.abs(lls[0]! - -0.6) < 1e-12 && Math.abs(lls[1]! - -0.7) < 1e-12, String(lls));
  assert.deepEqual(
    rn.examples.map((e) => [e.metrics.acc, e.metrics.acc_norm]),
    [
      [0, 1],
      [1, 0],
    ],
  );
  assert.equal(rn.metrics.acc, 0.5);
  assert.equal(rn.metrics.acc_norm, 0.5);
});

test('a backend without log-probs fails clearly on a multiple-choice task', async () => {
  const s = await serve(fakeLlm);
  const backend = new EndpointBackend(
    new LlmClient({ endpoints: [{ base_url: s.url }], model: 'm' }),
  );
  const task = makeTask(
    {
      task: 'mc',
      doc_to_text: 'q',
      doc_to_choice: ['a', 'b'],
      doc_to_target: 0,
      output_type: 'multiple_choice',
      metric_list: [{ metric: 'acc' }],
    },
    [{ q: 'x' }],
  );
  await assert.rejects(
    () => evaluateTask(task, backend),
    (e: unknown) => e instanceof CapabilityError && /log/.test(e.message),
  );
  const noLl = {
    name: 'gen-only',
    supportsLoglikelihood: false,
    loglikelihood: async () => [],
    generate: async () => [],
  };
  await assert.rejects(
    () => evaluateTask(task, noLl),
    (e: unknown) => e instanceof CapabilityError && /gen-only/.test(e.message),
  );
});

test('judge: both orders, winner needs both, disagreement is a tie, agreement reported', async () => {
  // A scripted judge that always prefers the response containing "good", but with position
  // bias when both or neither do: then it picks whatever is shown first.
  const s = await serve((r) => {
    const u = r.body.messages[1].content as string;
    const first = /\[Response 1\]\n([\s\S]*?)\n\[End of Response 1\]/.exec(u)![1]!;
    const second = /\[Response 2\]\n([\s\S]*?)\n\[End of Response 2\]/.exec(u)![1]!;
    const g1 = first.includes('good');
    const g2 = second.includes('good');
    const verdict = g1 && !g2 ? '1' : g2 && !g1 ? '2' : first.includes('garbled') ? 'maybe?' : '1';
    return {
      body: {
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: `Because.\n${verdict}` },
            finish_reason: 'stop',
          },
        ],
      },
    };
  });
  const client = new LlmClient({ endpoints: [{ base_url: s.url }], model: 'judge' });
  const sum = await judgePairwise(
    [
      { instruction: 'i1', a: 'a good answer', b: 'weak' },
      { instruction: 'i2', a: 'weak', b: 'good too' },
      { instruction: 'i3', a: 'plain', b: 'plain' },
      { instruction: 'i4', a: 'garbled', b: 'plain' },
    ],
    { client },
  );
  assert.deepEqual(
    sum.verdicts.map((v) => v.winner),
    ['a', 'b', 'tie', 'tie'],
  );
  assert.equal(sum.win, 1);
  assert.equal(sum.loss, 1);
  assert.equal(sum.tie, 2);
  assert.equal(sum.agreement, 0.5);
  assert.equal(sum.invalid, 1);
  assert.equal(s.requests.length, 8);
  assert.equal(parseVerdict('reasons\n**TIE**'), 'tie');
  assert.equal(parseVerdict('Verdict: 2.'), 'second');
  assert.deepEqual(combine('first', 'second'), { winner: 'a', agree: true });
  assert.deepEqual(combine('first', 'first'), { winner: 'tie', agree: false });
});
