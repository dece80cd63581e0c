import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  checkLeaks,
  planSplit,
  SplitConfig,
  type SplitName,
  splitter,
} from '../../src/data/split.ts';
import { loadSuperNiSplit, readTaskList, readTaskTable } from '../../src/data/task-lists.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { noShared, sharedData } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-split-'));

// 8 categories with 1..6 tasks each.
const table = new Map<string, string>();
for (let c = 0; c < 8; c++) for (let t = 0; t <= c % 6; t++) table.set(`c${c}_t${t}`, `cat${c}`);

function examples(n = 40) {
  const out: { task: string; category: string; input: string; target: string; id?: string }[] = [];
  for (const [task, category] of table)
    for (let i = 0; i < n; i++)
      out.push({ task, category, input: `${task} question ${i}`, target: `a${i}` });
  return out;
}

test('plan: three generalisation levels, deterministic for a seed', () => {
  const cfg = {
    numHeldOutCategories: 2,
    partialTaskFraction: 0.3,
    supervisedFraction: 0.1,
    seed: 11,
  };
  const p = planSplit(table, cfg);
  assert.deepEqual(planSplit(table, cfg), p);
  const q = planSplit(table, { ...cfg, seed: 12 });
  assert.notDeepEqual(
    [p.heldOutCategories, p.partiallySupervisedTasks],
    [q.heldOutCategories, q.partiallySupervisedTasks],
  );
  assert.equal(p.heldOutCategories.length, 2);
  for (const t of p.fullyHeldOutTasks) assert.ok(p.heldOutCategories.includes(table.get(t)!));
  const trainCats = new Set(p.trainTasks.map((t) => table.get(t)!));
  for (const t of p.partiallySupervisedTasks)
    assert.ok(trainCats.has(table.get(t)!), `${t}'s category is trained on`);
  for (const h of p.heldOutCategories) assert.ok(!trainCats.has(h));
  assert.equal(
    p.fullyHeldOutTasks.length + p.partiallySupervisedTasks.length + p.trainTasks.length,
    table.size,
  );
  assert.ok(p.partiallySupervisedTasks.length > 0);
});

test('plan: explicit lists are checked against the table', () => {
  const p = planSplit(table, { heldOutCategories: ['cat1'], heldOutTasks: ['c5_t0', 'c5_t3'] });
  assert.deepEqual(p.fullyHeldOutTasks, ['c1_t0', 'c1_t1']);
  assert.deepEqual(p.partiallySupervisedTasks, ['c5_t0', 'c5_t3']);
  assert.throws(
    () => planSplit(table, { heldOutCategories: ['nope'] }),
    (e) => e instanceof ConfigError && /'nope' is not in the task table/.test(e.message),
  );
  assert.throws(
    () => planSplit(table, { heldOutCategories: ['cat1'], heldOutTasks: ['c1_t0'] }),
    /already/,
  );
  assert.throws(
    () => planSplit(table, { heldOutTasks: ['c0_t0'] }),
    /every task of category 'cat0' is held out/,
  );
  assert.throws(() => SplitConfig.parse({ heldOutCategory: ['x'] }), /heldOutCategory/);
});

test('splitting streams examples into the four splits and the leak check passes', async () => {
  const plan = planSplit(table, {
    numHeldOutCategories: 2,
    partialTaskFraction: 0.3,
    supervisedFraction: 0.2,
    seed: 4,
  });
  const assign = splitter(plan);
  const by: Record<SplitName, ReturnType<typeof examples>> = {
    train: [],
    fully_held_out: [],
    partially_supervised: [],
    fully_supervised: [],
  };
  for (const ex of examples()) by[assign(ex)].push(ex);
  for (const k of Object.keys(by)) assert.ok(by[k as SplitName].length > 0, k);
  const sup = by.fully_supervised.length / (by.fully_supervised.length + by.train.length);
  assert.ok(Math.abs(sup - 0.2) < 0.05, String(sup));
  // Same plan, same stream -> same assignment.
  const a1 = splitter(plan);
  const a2 = splitter(plan);
  assert.deepEqual(
    examples().map((e) => a1(e)),
    examples().map((e) => a2(e)),
  );
  const held = [...by.fully_supervised, ...by.partially_supervised, ...by.fully_held_out];
  const report = await checkLeaks(plan, by.train, { evalInstances: held });
  assert.equal(report.ok, true, JSON.stringify(report.leaks));
  assert.equal(report.checkedTrain, by.train.length);
  assert.throws(
    () => assign({ task: 'unknown_task' }),
    (e) => e instanceof DataError && /not in the split's task table/.test(e.message),
  );
});

test('leak check detects injected leaks of every kind', async () => {
  const plan = planSplit(table, {
    heldOutCategories: ['cat3'],
    heldOutTasks: ['c5_t1'],
    supervisedFraction: 0.25,
    seed: 1,
  });
  const assign = splitter(plan);
  const train = [];
  const evalSup = [];
  for (const ex of examples(20)) {
    const s = assign(ex);
    if (s === 'train') train.push(ex);
    else if (s === 'fully_supervised') evalSup.push(ex);
  }
  const leaked = [
    ...train.slice(0, 5),
    { task: 'c3_t2', category: 'cat3', input: 'sneaky', target: 'x' }, // held-out category's task
    { task: 'c5_t1', category: 'cat5', input: 'sneaky 2', target: 'x' }, // partially supervised task
    { task: 'c4_t0', category: 'cat3', input: 'mislabelled', target: 'x' }, // claims a held-out category
    { ...evalSup[0]!, input: `  ${evalSup[0]!.input.toUpperCase()}!` }, // a held-out instance, re-cased
  ];
  const r = await checkLeaks(plan, leaked, { evalInstances: evalSup });
  assert.equal(r.ok, false);
  const kinds = r.leaks.map((l) => `${l.kind}@${l.index}`);
  assert.deepEqual(kinds, [
    'held_out_task@5',
    'held_out_category@5',
    'held_out_task@6',
    'held_out_category@7',
    'eval_instance@8',
  ]);
  // A tampered plan is caught before any data is read.
  const bad = { ...plan, trainTasks: [...plan.trainTasks, 'c3_t0'] };
  const r2 = await checkLeaks(bad, []);
  assert.deepEqual(
    r2.leaks.map((l) => [l.kind, l.detail]),
    [
      ['plan', "task 'c3_t0' is both trained on and held out"],
      ['plan', "training task 'c3_t0' is in held-out category 'cat3'"],
    ],
  );
});

test('Super-NI default split loads 119 test tasks; bad lines name file:line', {
  skip: noShared,
}, async () => {
  const s = await loadSuperNiSplit(sharedData('natural-instructions', 'splits', 'default'));
  assert.equal(s.test.length, 119);
  assert.equal(s.test[0], 'task1356_xlsum_title_generation');
  assert.ok(s.test.includes('task1159_bard_analogical_reasoning_containers'));
  const again = await loadSuperNiSplit(
    sharedData('natural-instructions', 'splits', 'default', 'test_tasks.txt'),
  );
  assert.deepEqual(again.test, s.test);
  const bad = join(dir, 'test_tasks.txt');
  writeFileSync(bad, 'task1_ok\n\nnot a task name\n');
  await assert.rejects(
    loadSuperNiSplit(dir),
    (e) => e instanceof DataError && e.message.startsWith(`${bad}:3:`),
  );
  writeFileSync(bad, 'task1_a\ntask2_b\ntask1_a\n');
  await assert.rejects(readTaskList(bad), /:3: task 'task1_a' is listed twice/);
});

test('task tables from YAML, CSV and JSONL; conflicts and bad rows are located', async () => {
  const y = join(dir, 't.yaml');
  writeFileSync(y, 'reverse_word: strings\nadd_numbers: arithmetic\n');
  assert.deepEqual(
    [...(await readTaskTable(y))],
    [
      ['reverse_word', 'strings'],
      ['add_numbers', 'arithmetic'],
    ],
  );
  const c = join(dir, 't.csv');
  writeFileSync(c, 'task,category\na,x\nb,y\nc\n');
  await assert.rejects(readTaskTable(c), (e) => e instanceof DataError && e.line === 4);
  const j = join(dir, 't.jsonl');
  writeFileSync(j, '{"task":"a","category":"x","input":"i"}\n{"task":"a","category":"y"}\n');
  await assert.rejects(
    readTaskTable(j),
    (e) => e instanceof DataError && e.line === 2 && /two categories/.test(e.message),
  );
  const l = join(dir, 'l.yaml');
  writeFileSync(l, '- {task: a, category: x}\n- {task: b}\n');
  await assert.rejects(readTaskTable(l), (e) => e instanceof DataError && e.field === '1.category');
});

test('splitFile writes the four splits and the plan; examples without a category are located', async () => {
  const { splitFile } = await import('../../src/data/split-files.ts');
  const { writeRecords, readRecords } = await import('../../src/data/io.ts');
  const input = join(dir, 'ex.jsonl');
  await writeRecords(input, examples(10));
  const r = await splitFile({
    input,
    outDir: join(dir, 'out'),
    config: {
      heldOutCategories: ['cat2'],
      heldOutTasks: ['c4_t1'],
      supervisedFraction: 0.3,
      seed: 2,
    },
  });
  assert.equal(r.leaks.ok, true);
  assert.equal(r.counts.fully_held_out, 30);
  assert.equal(r.counts.partially_supervised, 10);
  let n = 0;
  for await (const _ of readRecords(r.files.fully_supervised)) n++;
  assert.equal(n, r.counts.fully_supervised);
  const noCat = join(dir, 'nocat.jsonl');
  writeFileSync(
    noCat,
    '{"task":"a","category":"x","input":"i","target":"o"}\n{"task":"b","input":"i","target":"o"}\n',
  );
  await assert.rejects(
    splitFile({ input: noCat, outDir: join(dir, 'out2'), config: {} }),
    (e) => e instanceof DataError && e.line === 2 && e.field === 'category',
  );
  // With a table, an example whose task is missing from it is located too.
  await assert.rejects(
    splitFile({
      input: noCat,
      outDir: join(dir, 'out3'),
      config: {},
      table: new Map([['a', 'x']]),
    }),
    (e) =>
      e instanceof DataError &&
      e.line === 2 &&
      /task 'b' is not in the split's task table/.test(e.message),
  );
});
