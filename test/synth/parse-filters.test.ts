import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ALPACA_BLACKLIST,
  capitalize,
  checkInstance,
  checkInstruction,
  dedupInstances,
  SELF_INSTRUCT_BLACKLIST,
} from '../../src/synth/filters.ts';
import {
  parseAlpacaResponse,
  parseInstances,
  parseInstructionList,
} from '../../src/synth/parse.ts';
import {
  encodeAlpacaPrompt,
  encodeInstructionPrompt,
  parseClassificationAnswer,
} from '../../src/synth/prompts.ts';

test('instruction filters give the first failing reason', () => {
  assert.equal(checkInstruction(''), 'empty');
  assert.equal(checkInstruction('Say hello now.'), 'too_short');
  assert.equal(checkInstruction('Tell me a fact.'), null);
  assert.equal(checkInstruction(Array(151).fill('word').join(' ')), 'too_long');
  assert.equal(checkInstruction(Array(150).fill('word').join(' ')), null);
  assert.equal(checkInstruction('Draw a cat on the wall.'), 'blacklisted');
  assert.equal(checkInstruction('Describe how to GO TO the station.'), 'blacklisted');
  // Whole words only: "mapping" is not "map".
  assert.equal(checkInstruction('Explain the mapping between two sets.'), null);
  assert.equal(checkInstruction('Write a program that sorts numbers.'), 'write_a_program');
  assert.equal(checkInstruction('"Quote" this sentence back to me.'), 'starts_with_punctuation');
  assert.equal(checkInstruction('Élaborez une liste de trois fruits.'), 'starts_with_non_ascii');
  assert.equal(SELF_INSTRUCT_BLACKLIST.length, 13);
  assert.equal(ALPACA_BLACKLIST.length, 18);
  assert.equal(
    checkInstruction('Describe the music of this band please.', { blacklist: ALPACA_BLACKLIST }),
    'blacklisted',
  );
  assert.equal(checkInstruction('Describe the music of this band please.'), null);
});

test('capitalisation modes, incl. Python str.capitalize quirk', () => {
  assert.equal(capitalize('plan a trip to Paris', 'python'), 'Plan a trip to paris');
  assert.equal(capitalize('plan a trip to Paris', 'first'), 'Plan a trip to Paris');
  assert.equal(capitalize('plan', 'none'), 'plan');
});

test('the instruction list prompt is numbered and ends at the next number', () => {
  const p = encodeInstructionPrompt(['First  task:', 'Second\ntask'], 'H\n');
  assert.equal(p, 'H\n1. First task\n2. Second task\n3.');
});

test('parseInstructionList splits numbered continuations and drops truncated responses', () => {
  const r = parseInstructionList(
    ' Write a haiku about rain.\n10. list three   rivers in Europe.\n11.Not split',
    'stop',
  );
  assert.deepEqual(r.instructions, [
    'Write a haiku about rain.',
    'List three rivers in Europe.\n11.Not split'.replace(/\s+/g, ' '),
  ]);
  assert.deepEqual(parseInstructionList(' a\n10. b', 'length'), {
    instructions: [],
    truncated: true,
  });
});

test('parseInstances: input-first, output-first, single output, truncation', () => {
  const gen = parseInstances(
    'Example 1\nInput: 2+2\nOutput: 4\nExample 2\nInput: 3+3\nOutput: 6\nInput: extra',
    false,
    'stop',
  );
  assert.deepEqual(gen, [
    { input: '2+2', output: '4' },
    { input: '3+3', output: '6' },
  ]);
  assert.deepEqual(parseInstances('Output: A banana.', false, 'stop'), [
    { input: '', output: 'A banana.' },
  ]);
  assert.deepEqual(parseInstances('no structure here', false, 'stop'), []);
  const clf = parseInstances(
    'Class label: Positive\nReview: great\nClass label: Negative\nReview: bad',
    true,
    'stop',
  );
  assert.deepEqual(clf, [
    { output: 'Positive', input: 'Review: great' },
    { output: 'Negative', input: 'Review: bad' },
  ]);
  assert.equal(parseInstances('Class label: A\nx\nClass label: B\ny', true, 'length').length, 1);
});

test('parseInstances, classification: only the parts after each "Class label:"', () => {
  // Text before the first label is not an instance.
  assert.deepEqual(
    parseInstances('Sure, here are examples.\nClass label: Yes\nSentence: I agree.', true, 'stop'),
    [{ output: 'Yes', input: 'Sentence: I agree.' }],
  );
  // No label at all: no instances (not the whole response as one output).
  assert.deepEqual(parseInstances('Positive\nReview: great', true, 'stop'), []);
  assert.deepEqual(parseInstances('', true, 'stop'), []);
  // An empty part is kept for the instance filters, which reject it, as Self-Instruct does.
  const empty = parseInstances('Class label:\nClass label: B\ny', true, 'stop');
  assert.deepEqual(empty, [
    { output: '', input: '' },
    { output: 'B', input: 'y' },
  ]);
  assert.notEqual(checkInstance(empty[0]!), null);
  // A label without input keeps an empty input; the label is the output.
  assert.deepEqual(parseInstances('Class label: Odd', true, 'stop'), [
    { output: 'Odd', input: '' },
  ]);
});

test('instance filters and task-level dedup', () => {
  assert.equal(checkInstance({ input: 'a', output: 'a' }), 'input_equals_output');
  assert.equal(checkInstance({ input: 'a', output: ' ' }), 'empty_output');
  assert.equal(checkInstance({ input: 'Question:', output: 'x' }), 'ends_with_colon');
  assert.equal(checkInstance({ input: '', output: 'x' }), null);
  assert.deepEqual(
    dedupInstances([
      { input: 'q', output: '1' },
      { input: 'q', output: '1' },
      { input: '', output: '2' },
    ]),
    {
      kept: [
        { input: 'q', output: '1' },
        { input: '', output: '2' },
      ],
      conflicting: false,
    },
  );
  assert.deepEqual(
    dedupInstances([
      { input: 'q', output: '1' },
      { input: 'q', output: '2' },
    ]),
    { kept: [], conflicting: true },
  );
});

test('Alpaca prompt and response parsing', () => {
  const p = encodeAlpacaPrompt([
    { instruction: 'Add the numbers:', input: '2 and 3', output: '5' },
    { instruction: 'Name a colour.', input: '', output: 'Red' },
  ]);
  assert.ok(
    p.endsWith(
      '###\n1. Instruction: Add the numbers\n1. Input:\n2 and 3\n1. Output:\n5\n###\n2. Instruction: Name a colour.\n2. Input:\n<noinput>\n2. Output:\nRed\n###\n3. Instruction:',
    ),
  );
  const text =
    ' Give a synonym of happy.\n3. Input:\n<noinput>\n3. Output:\nGlad\n###\n4. Instruction: Sort the list.\n4. Input:\n3, 1, 2\n4. Output:\n1, 2, 3\n###\n5. Broken block\n###\n6. Instruction: cut';
  const r = parseAlpacaResponse(text, 'length', 3);
  assert.deepEqual(r.items, [
    { instruction: 'Give a synonym of happy.', input: '', output: 'Glad' },
    { instruction: 'Sort the list.', input: '3, 1, 2', output: '1, 2, 3' },
  ]);
  assert.equal(r.unparseable, 1);
  assert.equal(r.truncatedDropped, true);
});

test('classification answers use Self-Instruct truthiness', () => {
  assert.equal(parseClassificationAnswer(' Yes'), true);
  assert.equal(parseClassificationAnswer('YES\n'), true);
  assert.equal(parseClassificationAnswer(' No'), false);
  assert.equal(parseClassificationAnswer(' Yes, it is'), false);
});
