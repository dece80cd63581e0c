import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  encodeNatInst,
  loadNatInstSplit,
  loadNatInstTask,
  natInstExamples,
  parseNatInstTask,
} from '../../src/data/templates/natinst.ts';
import { DataError } from '../../src/util/errors.ts';
import { sharedData } from '../helpers/shared.ts';

const capital = () =>
  loadNatInstTask(sharedData('natural-instructions', 'task1146_country_capital.EXCERPT.json'));
const analogy = () =>
  loadNatInstTask(
    sharedData(
      'natural-instructions',
      'task1159_bard_analogical_reasoning_containers.EXCERPT.json',
    ),
  );

test('Tk-Instruct encoding: definition + 2 positive examples (the default)', () => {
  const t = capital();
  assert.equal(t.name, 'task1146_country_capital');
  assert.equal(
    encodeNatInst(t, 'Afghanistan'),
    'Definition: In this task, you are given a country name and you need to return the capital city of the given country.\n\n' +
      ' Positive Example 1 -\nInput: United States.\n Output: Washington.\n\n' +
      ' Positive Example 2 -\nInput: India.\n Output: New Delhi.\n\n' +
      'Now complete the following example -\nInput: Afghanistan.\nOutput: ',
  );
});

test('encodings with negatives and explanations, without definition; length budget', () => {
  const t = capital();
  const s = encodeNatInst(t, 'Chad', {
    definition: false,
    positive: 1,
    negative: 1,
    explanation: true,
  });
  assert.equal(
    s,
    ' Positive Example 1 -\nInput: United States.\n Output: Washington.\n Explanation: Washington is the capital city of United States.\n\n' +
      ' Negative Example 1 -\nInput: France.\n Output: Rome.\n Explanation: Rome is not the capital city of France. Paris is the capital city of France.\n\n' +
      'Now complete the following example -\nInput: Chad.\nOutput: ',
  );
  const short = encodeNatInst(t, 'Chad', { positive: 2, maxLength: 200 });
  assert.ok(short.length <= 200 && !short.includes('Positive Example 2'));
});

test('instances keep every reference; the training target is chosen with the seed', () => {
  const t = analogy();
  const multi = t.instances.filter((i) => i.output.length > 1);
  assert.ok(multi.length >= 2, 'the excerpt has multi-reference instances');
  const ex = natInstExamples(t, { seed: 1 });
  assert.equal(ex.length, t.instances.length);
  for (const e of ex) assert.ok(e.references!.includes(e.target));
  assert.deepEqual(natInstExamples(t, { seed: 1 }), ex);
  assert.equal(ex[0]!.category, 'Word Analogy');
  const brazil = natInstExamples(capital()).find((e) => e.input.includes('Brazil'));
  assert.deepEqual(brazil?.references, ['Bras']);
});

test('the default split lists 119 test tasks; a task without Definition is an error', () => {
  const tasks = loadNatInstSplit(
    sharedData('natural-instructions', 'splits', 'default', 'test_tasks.txt'),
  );
  assert.equal(tasks.length, 119);
  assert.ok(tasks.includes('task1159_bard_analogical_reasoning_containers'));
  assert.throws(
    () => parseNatInstTask({ Instances: [] }, 'x', 'x.json'),
    (e: unknown) => e instanceof DataError && e.field === 'Definition',
  );
});
