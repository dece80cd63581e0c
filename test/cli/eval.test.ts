// `instructkit eval` end to end on a tiny model directory written here: JSON and Markdown files,
// numbers equal to evaluating the same tasks in process, and bad input named on stderr; and
// `instructkit eval judge` against a scripted OpenAI-compatible judge.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/eval/local.ts';
import { evaluateTask } from '../../src/eval/run.ts';
import { loadTaskFile } from '../../src/eval/task.ts';
import { saveCheckpoint } from '../../src/models/checkpoint.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../../src/models/tiny.ts';
import { repoRoot } from '../helpers/shared.ts';
import { startScriptedServer } from '../synth/scripted-server.ts';

const cli = (args: string[]) =>
  spawnSync(process.execPath, [join(repoRoot, 'bin', 'instructkit.js'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
  });

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'ik-cli-eval-'));
  const corpus = Array.from(
    { length: 30 },
    (_, i) => `The ${['cat', 'dog', 'owl'][i % 3]} number ${i} is ${['small', 'big'][i % 2]}.`,
  );
  const { tokenizer } = trainTinyTokenizer(corpus, 320);
  const spec = tinyLlamaConfig({
    vocabSize: 320,
    eosTokenId: tokenizer.eos!.id,
    padTokenId: tokenizer.pad!.id,
    maxPositions: 64,
    shape: {
      hiddenSize: 32,
      intermediateSize: 64,
      numLayers: 1,
      numHeads: 2,
      numKvHeads: 1,
      headDim: 16,
      initializerRange: 0.3,
    },
  });
  const model = join(dir, 'model');
  await saveCheckpoint(model, {
    spec,
    tensors: CausalLM.random(spec, 2, tokenizer).weights,
    tokenizer,
    generationConfig: null,
  });
  const docs = Array.from({ length: 5 }, (_, i) => ({
    q: `Is the ${['cat', 'dog', 'owl'][i % 3]} number ${i} small or big?`,
    gold: i % 2,
    answer: ['small', 'big'][i % 2],
  }));
  writeFileSync(join(dir, 'docs.jsonl'), `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`);
  writeFileSync(
    join(dir, 'mc.yaml'),
    [
      'task: size_mc',
      'category: animals',
      'dataset_path: docs.jsonl',
      'doc_to_text: "{{ q }}\\nAnswer:"',
      'doc_to_choice: ["small", "big"]',
      'doc_to_target: gold',
      'output_type: multiple_choice',
      'metric_list:',
      '  - metric: acc',
      '  - metric: acc_norm',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'gen.yaml'),
    [
      'task: size_gen',
      'dataset_path: docs.jsonl',
      'doc_to_text: "{{ q }}\\nAnswer:"',
      'doc_to_target: answer',
      'generation_kwargs:',
      '  until: ["\\n"]',
      '  max_gen_toks: 4',
      'metric_list:',
      '  - metric: exact_match',
      '  - metric: f1',
      '',
    ].join('\n'),
  );
  return { dir, model };
}

test('`instructkit eval` on a local model directory writes JSON and Markdown that match an in-process run', async () => {
  const { dir, model } = await setup();
  const out = join(dir, 'results.json');
  const md = join(dir, 'results.md');
  const r = cli([
    'eval',
    '--model',
    model,
    '--tasks',
    join(dir, 'mc.yaml'),
    join(dir, 'gen.yaml'),
    '--limit',
    '4',
    '--out',
    out,
    '--markdown',
    md,
  ]);
  assert.equal(r.status, 0, r.stderr);
  const json = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(json.model, model);
  assert.deepEqual(
    json.tasks.map((t: { task: string; n: number }) => [t.task, t.n]),
    [
      ['size_mc', 4],
      ['size_gen', 4],
    ],
  );
  assert.deepEqual(
    json.table.map((row: { task: string; metric: string }) => `${row.task}/${row.metric}`),
    ['size_mc/acc', 'size_mc/acc_norm', 'size_gen/exact_match', 'size_gen/f1'],
  );
  assert.equal(json.tasks[0].examples[0].lls.length, 2);

  // The same tasks evaluated here give the same numbers.
  const lm = await CausalLM.load(model);
  const backend = new LocalBackend(lm);
  for (const [i, file] of ['mc.yaml', 'gen.yaml'].entries()) {
    const res = await evaluateTask(loadTaskFile(join(dir, file)), backend, { limit: 4 });
    for (const [m, v] of Object.entries(res.metrics))
      assert.ok(Math.abs(json.tasks[i].metrics[m] - v) < 1e-9, `${res.task} ${m}`);
    assert.deepEqual(
      json.tasks[i].examples.map((e: { prediction: string }) => e.prediction),
      res.examples.map((e) => e.prediction),
    );
  }

  // Markdown: printed and written, one row per task and metric, values as percentages.
  const table = readFileSync(md, 'utf8');
  assert.equal(r.stdout, table);
  const lines = table.trim().split('\n');
  assert.equal(lines[0], '| task | category | n | metric | value | 95% CI |');
  assert.equal(lines.length, 2 + 4);
  json.table.forEach(
    (
      row: { task: string; category?: string; n: number; metric: string; value: number },
      k: number,
    ) => {
      assert.ok(
        lines[2 + k]!.startsWith(
          `| ${row.task} | ${row.category ?? ''} | ${row.n} | ${row.metric} | ${(100 * row.value).toFixed(1)} |`,
        ),
        lines[2 + k],
      );
    },
  );
});

test('`instructkit eval` bad input: the missing task field, an unreadable task file, a bad flag', async () => {
  const { dir, model } = await setup();
  const bad = join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    'task: t\ndataset_path: docs.jsonl\ndoc_to_text: q\nmetric_list:\n  - metric: acc\n',
  );
  const r = cli(['eval', '--model', model, '--tasks', bad]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad\.yaml/);
  assert.match(r.stderr, /field 'doc_to_target': missing required field/);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, 'no stack trace');

  const missing = cli(['eval', '--model', model, '--tasks', join(dir, 'nope.yaml')]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nope\.yaml/);

  const flag = cli(['eval', '--model', model, '--tasks', join(dir, 'mc.yaml'), '--limit', 'x']);
  assert.equal(flag.status, 1);
  assert.match(flag.stderr, /field 'limit'/);
});

test('`instructkit eval judge` judges pairs in both orders against a scripted endpoint', async () => {
  // Prefers a response containing "good"; otherwise picks whatever is shown first.
  const server = await startScriptedServer((r) => {
    const u = r.body.messages[1].content as string;
    const first = /\[Response 1\]\n([\s\S]*?)\n\[End of Response 1\]/.exec(u)![1]!;
    const second = /\[Response 2\]\n([\s\S]*?)\n\[End of Response 2\]/.exec(u)![1]!;
    const v = second.includes('good') && !first.includes('good') ? '2' : '1';
    return {
      body: {
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: `Reasons.\n${v}` },
            finish_reason: 'stop',
          },
        ],
      },
    };
  });
  try {
    const dir = mkdtempSync(join(tmpdir(), 'ik-cli-judge-'));
    const pairs = join(dir, 'pairs.jsonl');
    writeFileSync(
      pairs,
      [
        { id: 'p1', instruction: 'Say hi', a: 'a good hi', b: 'hi' },
        { id: 'p2', instruction: 'Say bye', input: 'politely', a: 'bye', b: 'good bye' },
        { id: 'p3', instruction: 'Count', a: '1 2', b: '1 2 3' },
      ]
        .map((p) => JSON.stringify(p))
        .join('\n'),
    );
    const out = join(dir, 'judge.json');
    const child = spawn(
      process.execPath,
      [
        join(repoRoot, 'bin', 'instructkit.js'),
        'eval',
        'judge',
        '--pairs',
        pairs,
        '--judge-url',
        server.url,
        '--judge-model',
        'scripted',
        '--out',
        out,
      ],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => {
      stdout += d;
    });
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    assert.equal(code, 0, stderr);
    const s = JSON.parse(readFileSync(out, 'utf8'));
    assert.deepEqual(
      s.verdicts.map((v: { id: string; winner: string }) => [v.id, v.winner]),
      [
        ['p1', 'a'],
        ['p2', 'b'],
        ['p3', 'tie'],
      ],
    );
    assert.equal(s.agreement, 2 / 3);
    assert.equal(server.requests.length, 6, 'every pair in both orders');
    assert.ok(server.requests.every((r) => r.body.model === 'scripted'));
    assert.match(
      stdout,
      /3 pairs, a wins 1, ties 1, b wins 1; win rate of a 50\.0%, order agreement 66\.7%/,
    );
  } finally {
    await server.close();
  }
});
