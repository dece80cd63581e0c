import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readRecords } from '../../src/data/io.ts';
import { computeStats, Histogram } from '../../src/data/stats.ts';
import { fixture } from '../helpers/shared.ts';

test('histogram percentiles are nearest-rank and exact', () => {
  const h = new Histogram();
  for (let i = 1; i <= 100; i++) h.add(i);
  assert.deepEqual(h.summary(), {
    count: 100,
    min: 1,
    max: 100,
    mean: 50.5,
    p50: 50,
    p90: 90,
    p99: 99,
  });
  const e = new Histogram();
  assert.equal(e.summary().count, 0);
  const s = new Histogram();
  for (const v of [3, 3, 3, 10]) s.add(v);
  assert.deepEqual([s.summary().p50, s.summary().p90, s.summary().max], [3, 10, 10]);
});

test('stats of task examples: counts by task and category, lengths, duplicates', async () => {
  const recs = [
    { task: 'rev', category: 'strings', template: 't0', input: 'Reverse: abc', target: 'cba' },
    { task: 'rev', category: 'strings', template: 't1', input: 'Flip abc.', target: 'cba' },
    { task: 'add', category: 'math', input: 'Add 2 and 3.', target: '5' },
    { task: 'add', category: 'math', input: 'add 2 and 3', target: '5' },
    { task: 'add', category: 'math', input: 'Add 4 and 4.', target: '8', id: 'x' },
  ];
  const s = await computeStats(recs, 'task');
  assert.equal(s.records, 5);
  assert.equal(s.exactDuplicates, 1);
  assert.deepEqual(s.tasks, { add: 3, rev: 2 });
  assert.deepEqual(s.categories, { math: 3, strings: 2 });
  assert.deepEqual(s.templates, { t0: 1, t1: 1 });
  assert.deepEqual(Object.keys(s.fields), ['input', 'target']);
  assert.equal(s.fields.target!.chars.max, 3);
  assert.equal(s.fields.input!.words.p50, 4);
});

test('stats of chats count turns and roles; of Alpaca JSON count empty inputs', async () => {
  const chat = await computeStats(
    [
      {
        messages: [
          { role: 'user', content: 'hi there' },
          { role: 'assistant', content: 'hello' },
        ],
      },
      {
        messages: [
          { role: 'system', content: 's' },
          { role: 'user', content: 'q' },
          { role: 'assistant', content: 'a' },
        ],
      },
    ],
    'chat',
  );
  assert.deepEqual(chat.roles, { assistant: 2, user: 2, system: 1 });
  assert.equal(chat.turns!.max, 3);
  assert.equal(chat.fields['messages.user']!.words.max, 2);
  const alpaca = await computeStats(
    readRecords(fixture('data', 'alpaca_small.json')),
    'instruction',
  );
  assert.equal(alpaca.records, 3);
  assert.equal(alpaca.fields.input!.empty, 1);
  assert.equal(alpaca.fields.output!.chars.min, 2);
});
