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
import { noShared, sharedData } from '../helpers/shared.ts';

const capital = () =>
  loadNatInstTask(sharedData('natural-instructions', 'task1146_country_capital.EXCERPT.json'));
const analogy = () =>
  loadNatInstTask(
    sharedData(
      'natural-instructions',
      'task1159_bard_analogical_reasoning_containers.EXCERPT.json',
    ),
  );

test('Tk-Instruct encoding: definition + 2 positive examples (the default)', {
  skip: noShared,
}, () => {
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

test('encodings with negatives and explanations, without definition; length budget', {
  skip: noShared,
}, () => {
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

// task1159's definition, verbatim from the task file (it already ends with '.').
const ANALOGY_DEFINITION =
  'Two analogies that relate items to the associated containers is given in the form "A : B. C : ?". ' +
  '"A : B" relates item A to its associated container B. Your task is to replace the question mark (?) ' +
  'with the appropriate container for the given item C, following the "A : B" relation.';

test('task1159, Tk-Instruct default encoding: definition + 2 positive examples', {
  skip: noShared,
}, () => {
  const t = analogy();
  const ex = natInstExamples(t);
  assert.equal(ex[0]!.id, 'task1159-1f85921a609441d3b7a93581c1ccd801');
  // Outputs "bottle" and "box" gain a '.', inputs ending in '?' do not (punctuation rule).
  assert.equal(
    ex[0]!.input,
    `Definition: ${ANALOGY_DEFINITION}\n\n` +
      ' Positive Example 1 -\nInput: soda : can. water : ?\n Output: bottle.\n\n' +
      ' Positive Example 2 -\nInput: jam : jar. cereal : ?\n Output: box.\n\n' +
      'Now complete the following example -\nInput: honey : jar. potatoes : ?\nOutput: ',
  );
  assert.equal(ex[0]!.target, 'sack');
});

test('task1159 with 2 negative examples and explanations (the pos + neg + expl encoding)', {
  skip: noShared,
}, () => {
  const t = analogy();
  const s = encodeNatInst(t, 'soda : bottle. pickles : ?', {
    positive: 2,
    negative: 2,
    explanation: true,
  });
  assert.equal(
    s,
    `Definition: ${ANALOGY_DEFINITION}\n\n` +
      ' Positive Example 1 -\nInput: soda : can. water : ?\n Output: bottle.\n' +
      ' Explanation: The given analogy relates items to their containers. Soda can be stored in a can. Water can be stored in a bottle.\n\n' +
      ' Positive Example 2 -\nInput: jam : jar. cereal : ?\n Output: box.\n' +
      ' Explanation: The given analogy relates items to their containers. Jam can be stored in a jar. Cereal can be stored in a box.\n\n' +
      ' Negative Example 1 -\nInput: trash : can. plates : ?\n Output: wash.\n' +
      // This explanation has no final punctuation in the task file: the encoding adds the '.'.
      ' Explanation: The given analogy relates items to their containers. Trash can be stored in a can. But, wash is not the correct answer to plates, since wash is not a container. Further, the answer models an affordance.\n\n' +
      ' Negative Example 2 -\nInput: detergent : bottle. cereal : ?\n Output: cupboard.\n' +
      ' Explanation: The given analogy relates items to their containers. Detergent can be stored in a bottle. But, cupboard is not the right answer for cereal, since cereal is not stored in a cupboard.\n\n' +
      'Now complete the following example -\nInput: soda : bottle. pickles : ?\nOutput: ',
  );
});

test('instances keep every reference; the training target is chosen with the seed', {
  skip: noShared,
}, () => {
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

test('the default split lists 119 test tasks; a task without Definition is an error', {
  skip: noShared,
}, () => {
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
