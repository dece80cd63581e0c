import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildEvalIndex,
  type ContaminationEntry,
  type DecontaminationReport,
  decontaminate,
} from '../../src/data/decontaminate.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { readJsonl } from '../../src/util/jsonl.ts';
import { noShared, sharedData } from '../helpers/shared.ts';

const evalA = [
  {
    task: 'qa',
    input:
      'The quick brown fox jumps over the lazy dog while the farmer watches from the porch at dawn.',
    target: 'fox',
  },
  { task: 'qa', input: 'What is the capital of France?', target: 'Paris' },
];
const evalB = [
  {
    prompt:
      'Summarise: rivers carry sediment from the mountains down to the sea over thousands of years.',
    completion: 'Rivers move sediment.',
  },
];

async function runDecon(
  train: { instruction: string; input: string; output: string }[],
  config = {},
) {
  const index = await buildEvalIndex(
    [
      { name: 'evalA', kind: 'task', records: evalA },
      { name: 'evalB', kind: 'prompt_completion', records: evalB },
    ],
    config,
  );
  const removed: ContaminationEntry[] = [];
  const report: DecontaminationReport = { total: 0, kept: 0, removed: 0, removedBySet: {} };
  const kept = [];
  for await (const r of decontaminate(train, 'instruction', index, {
    report,
    onRemoved: (e) => void removed.push(e),
  }))
    kept.push(r);
  return { kept, removed, report, index };
}

const clean = { instruction: 'Name three fruits.', input: '', output: 'Apple, pear, plum.' };
const copiedA = {
  instruction: 'Read this and answer.',
  // Re-cased and re-punctuated copy of 16 words of evalA[0] (4 matching 13-grams): normalisation still matches.
  input: 'THE QUICK BROWN FOX -- jumps over the lazy dog; while the farmer watches from the porch!',
  output: 'x',
};
const copiedB = {
  instruction: 'Explain',
  input: '',
  output:
    'As we know, rivers carry sediment from the mountains down to the sea over thousands of years, slowly.',
};
const twelveOnly = {
  instruction: 'the quick brown fox jumps over the lazy dog while the farmer',
  input: '',
  output: '',
};

test('13-gram decontamination removes copies and reports set, record and n-gram', async () => {
  const { kept, removed, report, index } = await runDecon([clean, copiedA, twelveOnly, copiedB]);
  assert.deepEqual(kept, [clean, twelveOnly]);
  assert.deepEqual(report, { total: 4, kept: 2, removed: 2, removedBySet: { evalA: 1, evalB: 1 } });
  assert.deepEqual(removed[0], {
    index: 1,
    evalSet: 'evalA',
    evalIndex: 0,
    ngram: 'the quick brown fox jumps over the lazy dog while the farmer watches',
    evalSets: ['evalA'],
    matches: 4,
  });
  assert.equal(removed[1]!.index, 3);
  assert.equal(removed[1]!.evalSet, 'evalB');
  assert.equal(
    removed[1]!.ngram,
    'rivers carry sediment from the mountains down to the sea over thousands of',
  );
  assert.equal(removed[1]!.ngram.split(' ').length, 13);
  // The short eval text (6 words) is not indexed by default, and is counted.
  assert.deepEqual(index.tooShort, [1, 0]);
  assert.deepEqual(index.evalRecords, [2, 1]);
});

test('short eval texts match whole with minN; n is configurable; unknown keys rejected', async () => {
  const leak = {
    instruction: 'Quiz: what is the capital of France? Answer briefly.',
    input: '',
    output: 'Paris',
  };
  // Index only the eval inputs (the answer 'Paris' would otherwise be part of the short text).
  const { removed } = await runDecon([leak, clean], { minN: 5, evalFields: ['input', 'prompt'] });
  assert.equal(removed.length, 1);
  assert.equal(removed[0]!.ngram, 'what is the capital of france');
  const eight = await runDecon([twelveOnly], { n: 8 });
  assert.equal(eight.removed.length, 1);
  assert.equal(eight.removed[0]!.matches, 5);
  await assert.rejects(
    runDecon([], { ngram: 13 }),
    (e) => e instanceof ConfigError && e.field === 'ngram',
  );
});

test('real data: Self-Instruct seeds against the user-oriented eval set', {
  skip: noShared,
}, async () => {
  // Training side: the 175 seed tasks; eval side: the 252 user-oriented tasks (first instance).
  const seeds: { instruction: string; input: string; output: string }[] = [];
  for await (const { value } of readJsonl(sharedData('self-instruct', 'seed_tasks.jsonl'))) {
    const v = value as { instruction: string; instances: { input: string; output: string }[] };
    seeds.push({
      instruction: v.instruction,
      input: v.instances[0]!.input,
      output: v.instances[0]!.output,
    });
  }
  const evalRecs: { instruction: string; input: string; output: string }[] = [];
  for await (const { value } of readJsonl(
    sharedData('self-instruct', 'user_oriented_instructions.jsonl'),
  )) {
    const v = value as { instruction: string; instances: { input: string; output: string }[] };
    evalRecs.push({
      instruction: v.instruction,
      input: v.instances[0]!.input,
      output: v.instances[0]!.output,
    });
  }
  // Plant two eval records into the training set; exactly those must be removed.
  const train = [...seeds.slice(0, 50), evalRecs[10]!, ...seeds.slice(50), evalRecs[200]!];
  const index = await buildEvalIndex([
    { name: 'user_oriented', kind: 'instruction', records: evalRecs },
  ]);
  const removed: ContaminationEntry[] = [];
  let kept = 0;
  for await (const _ of decontaminate(train, 'instruction', index, {
    onRemoved: (e) => void removed.push(e),
  }))
    kept++;
  const planted = removed.filter((e) => e.index === 50 || e.index === train.length - 1);
  assert.equal(planted.length, 2);
  assert.deepEqual(
    planted.map((e) => e.evalIndex),
    [10, 200],
  );
  assert.equal(kept + removed.length, train.length);
});
