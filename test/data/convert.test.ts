import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ALPACA_LAYOUT,
  alpacaPrompt,
  chatToInstruction,
  chatToPromptCompletion,
  converter,
  instructionToChat,
  instructionToPromptCompletion,
  parseAlpacaPrompt,
  promptCompletionToChat,
  promptCompletionToInstruction,
  rankingToPreferences,
  taskToChat,
  taskToPromptCompletion,
} from '../../src/data/convert.ts';
import { ChatRecord, PreferenceRecord, PromptCompletionRecord } from '../../src/data/records.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';

const withInput = {
  instruction: 'Sort the words.',
  input: 'pear apple fig',
  output: 'apple fig pear',
};
const noInput = { instruction: 'Name a prime number.', input: '', output: '7' };

test('instruction -> prompt/completion uses the documented layout and parses back', () => {
  const pc = instructionToPromptCompletion(withInput);
  assert.equal(
    pc.prompt,
    `${ALPACA_LAYOUT.preambleWithInput}\n\n### Task:\nSort the words.\n\n### Text:\npear apple fig\n\n### Answer:\n`,
  );
  assert.equal(pc.completion, 'apple fig pear');
  PromptCompletionRecord.parse(pc);
  assert.deepEqual(promptCompletionToInstruction(pc), withInput);
  const pc2 = instructionToPromptCompletion(noInput);
  assert.equal(
    pc2.prompt,
    `${ALPACA_LAYOUT.preambleNoInput}\n\n### Task:\nName a prime number.\n\n### Answer:\n`,
  );
  assert.deepEqual(promptCompletionToInstruction(pc2), noInput);
  // Multi-line instruction and input survive.
  const ml = { instruction: 'Line one.\nLine two.', input: 'a\n\nb', output: 'x' };
  assert.deepEqual(promptCompletionToInstruction(instructionToPromptCompletion(ml)), ml);
});

test('a prompt not in the layout becomes the instruction', () => {
  assert.equal(parseAlpacaPrompt('just a question?'), undefined);
  assert.deepEqual(promptCompletionToInstruction({ prompt: 'Q?', completion: 'A' }), {
    instruction: 'Q?',
    input: '',
    output: 'A',
  });
  assert.deepEqual(parseAlpacaPrompt(alpacaPrompt('x', 'y')), { instruction: 'x', input: 'y' });
});

test('instruction <-> chat round trip with splitInput, system handling', () => {
  const chat = instructionToChat(withInput, { system: 'Be brief.' });
  ChatRecord.parse(chat);
  assert.deepEqual(chat.messages, [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Sort the words.\n\npear apple fig' },
    { role: 'assistant', content: 'apple fig pear' },
  ]);
  assert.throws(
    () => chatToInstruction(chat),
    (e) => e instanceof DataError && e.field === 'messages.0.role',
  );
  assert.deepEqual(chatToInstruction(chat, { onSystem: 'drop', splitInput: '\n\n' }), withInput);
  assert.deepEqual(chatToInstruction(instructionToChat(noInput), { splitInput: '\n\n' }), noInput);
  assert.deepEqual(chatToInstruction(chat, { onSystem: 'prepend' }), {
    instruction: 'Be brief.\n\nSort the words.\n\npear apple fig',
    input: '',
    output: 'apple fig pear',
  });
});

test('prompt/completion <-> chat is lossless for single turns', () => {
  const pc = { prompt: 'What is 2+2?', completion: '4' };
  assert.deepEqual(chatToPromptCompletion(promptCompletionToChat(pc)), pc);
});

test('multi-turn and wrong-role chats are rejected with the field path', () => {
  const multi = {
    messages: [
      { role: 'user' as const, content: 'a' },
      { role: 'assistant' as const, content: 'b' },
      { role: 'user' as const, content: 'c' },
      { role: 'assistant' as const, content: 'd' },
    ],
  };
  assert.throws(() => chatToPromptCompletion(multi), /found 4 non-system messages/);
  const swapped = {
    messages: [
      { role: 'assistant' as const, content: 'a' },
      { role: 'user' as const, content: 'b' },
    ],
  };
  assert.throws(
    () => chatToPromptCompletion(swapped),
    (e) => e instanceof DataError && e.field === 'messages.0.role',
  );
});

test('ranking -> all C(K,2) preference pairs, best first; ties left out', () => {
  const r = { prompt: 'p', completions: ['a', 'b', 'c', 'd'], ranking: [2, 0, 3, 1] };
  const pairs = rankingToPreferences(r);
  assert.equal(pairs.length, 6);
  for (const p of pairs) PreferenceRecord.parse(p);
  const rank = new Map(r.completions.map((c, i) => [c, r.ranking[i]!]));
  for (const p of pairs) assert.ok(rank.get(p.chosen)! < rank.get(p.rejected)!);
  assert.deepEqual(pairs[0], { prompt: 'p', chosen: 'b', rejected: 'a' });
  const seen = new Set(pairs.map((p) => [p.chosen, p.rejected].sort().join()));
  assert.equal(seen.size, 6);
  const tied = rankingToPreferences({
    prompt: 'p',
    completions: ['a', 'b', 'c'],
    ranking: [0, 0, 1],
  });
  assert.deepEqual(
    tied.map((p) => `${p.chosen}>${p.rejected}`),
    ['a>c', 'b>c'],
  );
});

test('task example -> prompt/completion and chat', () => {
  const ex = { task: 'reverse', category: 'strings', input: 'Reverse: abc', target: 'cba' };
  assert.deepEqual(taskToPromptCompletion(ex), { prompt: 'Reverse: abc', completion: 'cba' });
  assert.deepEqual(taskToPromptCompletion(ex, { completionPrefix: ' ' }).completion, ' cba');
  assert.deepEqual(
    taskToChat(ex, { system: 's' }).messages.map((m) => m.role),
    ['system', 'user', 'assistant'],
  );
});

test('converter dispatches and rejects unsupported pairs', () => {
  assert.deepEqual(converter('instruction', 'chat')(noInput), [instructionToChat(noInput)]);
  assert.equal(
    converter('ranking', 'preference')({ prompt: 'p', completions: ['a', 'b'], ranking: [1, 0] })
      .length,
    1,
  );
  assert.deepEqual(converter('chat', 'chat')({ messages: [] }), [{ messages: [] }]);
  assert.throws(
    () => converter('preference', 'ranking'),
    (e) => e instanceof ConfigError && /preference converts to: prompt_completion/.test(e.message),
  );
});
