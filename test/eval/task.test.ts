import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { extractAnswer } from '../../src/eval/extract.ts';
import { type MmluDoc, mmluTask } from '../../src/eval/mmlu.ts';
import { evaluateTask } from '../../src/eval/run.ts';
import {
  buildContext,
  docChoices,
  docTarget,
  loadTaskFile,
  makeTask,
} from '../../src/eval/task.ts';
import { ConfigError } from '../../src/util/errors.ts';

const dev: MmluDoc[] = [
  { question: ' What is 2 + 2? ', choices: ['3', '4', '5', '6'], answer: 1 },
  { question: 'Which is a prime?', choices: ['4', '6', '7', '9'], answer: 2 },
  { question: 'Unused third dev question?', choices: ['a', 'b', 'c', 'd'], answer: 0 },
];
const test_: MmluDoc[] = [
  { question: 'What is 3 x 3?', choices: ['6', '9', '12', '33'], answer: 1 },
];

test('MMLU 2-shot prompt is byte-exact to the harness format', () => {
  const task = mmluTask('high_school_mathematics', test_, dev, 2);
  const expected =
    'The following are multiple choice questions (with answers) about high school mathematics.\n\n' +
    'What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer: B\n\n' +
    'Which is a prime?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer: C\n\n' +
    'What is 3 x 3?\nA. 6\nB. 9\nC. 12\nD. 33\nAnswer:';
  assert.equal(buildContext(task, 0, test_[0]!), expected);
  assert.deepEqual(docChoices(task, test_[0]!), ['A', 'B', 'C', 'D']);
  assert.deepEqual(docTarget(task, test_[0]!), { index: 1, texts: ['B'] });
});

test('doc_to_* as field names, Jinja templates and Python list renders', () => {
  const task = makeTask(
    {
      task: 't',
      doc_to_text: 'Q: {{ q }}',
      doc_to_choice: '{{ opts }}',
      doc_to_target: 'gold',
      output_type: 'multiple_choice',
      metric_list: [{ metric: 'acc' }],
    },
    [{ q: 'pick', opts: ["it's", 'b "q"'], gold: "it's" }],
  );
  const d = task.docs[0]!;
  assert.equal(buildContext(task, 0, d), 'Q: pick');
  assert.deepEqual(docChoices(task, d), ["it's", 'b "q"']);
  assert.deepEqual(docTarget(task, d), { index: 0, texts: ["it's"] });
});

test('a task file with a missing or unknown field names it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-task-'));
  writeFileSync(join(dir, 'docs.jsonl'), '{"q": "x", "a": "y"}\n');
  const missing = join(dir, 'missing.yaml');
  writeFileSync(
    missing,
    'task: t\ndataset_path: docs.jsonl\ndoc_to_target: a\nmetric_list:\n  - metric: exact_match\n',
  );
  assert.throws(
    () => loadTaskFile(missing),
    (e: unknown) => e instanceof ConfigError && e.field === 'doc_to_text' && e.file === missing,
  );
  const unknown = join(dir, 'unknown.yaml');
  writeFileSync(
    unknown,
    'task: t\ndataset_path: docs.jsonl\ndoc_to_text: q\ndoc_to_target: a\nnum_shots: 3\nmetric_list:\n  - metric: exact_match\n',
  );
  assert.throws(
    () => loadTaskFile(unknown),
    (e: unknown) =>
      e instanceof ConfigError && e.field === 'num_shots' && /unknown\.yaml:5/.test(e.message),
  );
  const ok = join(dir, 'ok.yaml');
  writeFileSync(
    ok,
    'task: t\ndataset_path: docs.jsonl\ndoc_to_text: q\ndoc_to_target: a\nmetric_list:\n  - metric: exact_match\n',
  );
  const t = loadTaskFile(ok);
  assert.equal(t.docs.length, 1);
  assert.equal(buildContext(t, 0, t.docs[0]!), 'x');
});

test('BBH answer extraction: strict "the answer is", and a separate lenient fallback', () => {
  assert.deepEqual(extractAnswer("Let's think. 2+2=4. So the answer is (B).", 'bbh'), {
    answer: '(B)',
    fallback: '(B)',
    rule: 'strict',
  });
  const miss = extractAnswer('Reasoning...\nThe answer: True.', 'bbh');
  assert.equal(miss.answer, '[invalid]');
  assert.equal(miss.fallback, 'True');
  assert.equal(extractAnswer('so the answer is valid', 'bbh').answer, 'vali');
  assert.equal(extractAnswer('x = 42;', { regex: 'x = (\\d+)' }).answer, '42');
});

test('BBH tasks report the strict exact match and the fallback exact match separately', async () => {
  const task = makeTask(
    {
      task: 'bbh_like',
      doc_to_text: "Q: {{ q }}\nA: Let's think step by step.",
      doc_to_target: 'a',
      output_type: 'generate_until',
      answer_extraction: 'bbh',
      metric_list: [{ metric: 'exact_match' }],
    },
    [
      { q: 'one', a: '(A)' },
      { q: 'two', a: '(B)' },
      { q: 'three', a: 'True' },
      { q: 'four', a: '(D)' },
    ],
  );
  const gens: Record<string, string> = {
    one: 'First this, then that. So the answer is (A).',
    two: 'Hmm.\nThe answer: (B).',
    three: 'It holds.\nTrue',
    four: 'So the answer is (C).',
  };
  const backend = {
    name: 'scripted',
    supportsLoglikelihood: false,
    loglikelihood: async () => [],
    generate: async (reqs: readonly { context: string }[]) =>
      reqs.map((r) => gens[/Q: (\w+)/.exec(r.context)![1]!]!),
  };
  const r = await evaluateTask(task, backend);
  assert.deepEqual(
    r.examples.map((e) => [
      e.prediction,
      e.fallback,
      e.metrics.exact_match,
      e.metrics.exact_match_fallback,
    ]),
    [
      ['(A)', '(A)', 1, 1],
      ['[invalid]', '(B)', 0, 1],
      ['[invalid]', 'True', 0, 1],
      ['(C)', '(C)', 0, 0],
    ],
  );
  assert.equal(r.metrics.exact_match, 0.25);
  assert.equal(r.metrics.exact_match_fallback, 0.75);
  // Without extraction there is nothing to fall back to: asking for it is a config error.
  const plain = makeTask(
    {
      task: 'plain',
      doc_to_text: 'q',
      doc_to_target: 'a',
      metric_list: [{ metric: 'exact_match_fallback' }],
    },
    [{ q: 'x', a: 'y' }],
  );
  await assert.rejects(
    () => evaluateTask(plain, backend),
    (e: unknown) => e instanceof ConfigError && e.field === 'metric_list',
  );
});
