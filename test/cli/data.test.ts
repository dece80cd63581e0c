import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDocument } from 'yaml';
import { buildProgram } from '../../src/cli/commands.ts';
import { progress } from '../../src/util/progress.ts';
import { fixture, ifShared, noShared, repoRoot, sharedData } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-cli-data-'));
const bin = join(repoRoot, 'bin', 'instructkit.js');

function ik(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, 'data', ...args], { cwd: dir }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

const lines = (p: string) => readFileSync(join(dir, p), 'utf8').trim().split('\n');

// Task examples: 4 categories, 9 tasks, skewed sizes.
const cats: Record<string, string[]> = {
  strings: ['reverse', 'upper', 'count_chars'],
  math: ['add', 'sub', 'mul'],
  order: ['sort', 'max'],
  lookup: ['capital'],
};
const taskLines: string[] = [];
for (const [category, tasks] of Object.entries(cats))
  for (const task of tasks)
    for (let i = 0; i < (task === 'add' ? 600 : 60); i++)
      taskLines.push(
        JSON.stringify({ task, category, input: `${task} question ${i}`, target: String(i) }),
      );
writeFileSync(join(dir, 'tasks.jsonl'), `${taskLines.join('\n')}\n`);

// Options each command must offer, beyond --skip-invalid, --json and --quiet, which all have.
const DATA_OPTIONS: Record<string, string[]> = {
  convert: ['--to <kind>', '--kind <kind>', '--system <text>', '--split-input <sep>'],
  render: ['--builtin', '--natinst <task.json>', '--promptsource <templates.yaml>', '--records'],
  mix: ['--out <path>', '--config <file>', '--source <spec>', '--cap <n>', '--seed <n>'],
  split: ['--out-dir <dir>', '--table <file>', '--held-out-categories <list>'],
  dedup: ['--mode <m>', '--threshold <j>', '--num-perm <n>', '--report <file>'],
  decontaminate: ['--eval <spec>', '--n <n>', '--min-n <n>', '--report <file>'],
  stats: ['--top <n>', '--kind <kind>'],
  inspect: ['--count <n>', '--offset <k>', '--sample', '--seed <n>', '--max-chars <n>'],
  preferences: ['--out <file>', '--format <f>', '--facts <which>', '--rejected <list>'],
};
/** Commands that read no records (they generate them), so --skip-invalid has nothing to skip. */
const GENERATORS = new Set(['preferences']);

test('every data subcommand prints its options with --help', async () => {
  const data = buildProgram().commands.find((c) => c.name() === 'data')!;
  assert.deepEqual(data.commands.map((c) => c.name()).sort(), Object.keys(DATA_OPTIONS).sort());
  // --help prints helpInformation(); one real run shows the path from the binary works.
  const real = await ik('render', '--help');
  assert.equal(real.code, 0, real.stderr);
  const render = data.commands.find((c) => c.name() === 'render')!;
  assert.equal(real.stdout, render.helpInformation());
  for (const [name, wanted] of Object.entries(DATA_OPTIONS)) {
    const cmd = data.commands.find((c) => c.name() === name)!;
    const help = cmd.helpInformation();
    assert.match(help, new RegExp(`^Usage: instructkit data ${name}\\b`), name);
    const flags = [
      ...wanted,
      ...(GENERATORS.has(name) ? [] : ['--skip-invalid']),
      '--json',
      '-q, --quiet',
      ...cmd.options.map((o) => o.flags),
    ];
    for (const f of flags) assert.ok(help.includes(f), `${name} --help lacks ${f}`);
  }
});

test('progress: plain periodic lines when stderr is not a TTY', () => {
  const out: string[] = [];
  const stream = {
    isTTY: false,
    write: (s: string) => out.push(s),
  } as unknown as NodeJS.WriteStream;
  const p = progress({ label: 'work', unit: 'rows', total: 1000, stream, intervalSeconds: 0 });
  for (let i = 0; i < 1000; i++) p.tick();
  p.done();
  assert.ok(out.length >= 2);
  assert.match(out[0]!, /^work: 256\/1,000 rows \(25\.6%\), [\d,]+\/s\n$/);
  assert.match(out.at(-1)!, /^work: done, 1,000 rows in [\d.]+s/);
  const q: string[] = [];
  const f = progress({
    label: 'x',
    stream: { isTTY: false, write: (s: string) => q.push(s) } as never,
  });
  f.tick(5);
  f.fail();
  assert.deepEqual(q.at(-1), 'x: stopped after 5 items\n');
});

test('convert: Alpaca JSON -> chat Parquet -> Alpaca JSONL round trip', async () => {
  const a = await ik(
    'convert',
    fixture('data', 'alpaca_small.json'),
    'chat.parquet',
    '--to',
    'chat',
  );
  assert.equal(a.code, 0, a.stderr);
  assert.match(
    a.stdout,
    /converted 3 instruction record\(s\) .* into 3 chat record\(s\) in chat\.parquet/,
  );
  assert.match(a.stderr, /convert: done, 3 records/);
  const b = await ik(
    'convert',
    'chat.parquet',
    'back.jsonl',
    '--to',
    'instruction',
    '--split-input',
    '\n\n',
  );
  assert.equal(b.code, 0, b.stderr);
  const orig = JSON.parse(readFileSync(fixture('data', 'alpaca_small.json'), 'utf8'));
  assert.deepEqual(
    lines('back.jsonl').map((l) => JSON.parse(l)),
    orig,
  );
});

test('convert: bad input names file:line; --skip-invalid counts and lists what it skipped', async () => {
  writeFileSync(
    join(dir, 'bad.jsonl'),
    [
      '{"prompt":"a","completion":"b"}',
      '{"prompt":"c",',
      '{"prompt":"d","completion":5}',
      '{"prompt":"e","completion":"f"}',
    ].join('\n'),
  );
  const [strict, lax, badFlag] = await Promise.all([
    ik('convert', 'bad.jsonl', 'o1.jsonl', '--to', 'chat'),
    ik('convert', 'bad.jsonl', 'o2.jsonl', '--to', 'chat', '--skip-invalid'),
    ik('convert', 'bad.jsonl', 'o3.jsonl', '--to', 'chatt'),
  ]);
  assert.equal(strict.code, 1);
  assert.match(strict.stderr, /bad\.jsonl:2: invalid JSON/);
  assert.ok(!existsSync(join(dir, 'o1.jsonl')), 'partial output is removed');
  assert.equal(lax.code, 0, lax.stderr);
  assert.match(lax.stdout, /converted 2 prompt_completion record\(s\)/);
  assert.match(
    lax.stdout,
    /skipped 2 invalid record\(s\):\n {2}.*bad\.jsonl:2: invalid JSON.*\n {2}.*bad\.jsonl:3: field 'completion'/,
  );
  assert.equal(lines('o2.jsonl').length, 2);
  assert.equal(badFlag.code, 2);
});

test('mix: YAML config with relative paths, deterministic for a seed, unknown key located', async () => {
  writeFileSync(
    join(dir, 'mix.yaml'),
    'strategy: proportional\ncap: 100\ntotal: 900\nonExhausted: repeat\nbyTask: true\nsources:\n  - path: tasks.jsonl\n',
  );
  writeFileSync(
    join(dir, 'bad-mix.yaml'),
    'strategy: proportional\ncapp: 100\nsources:\n  - path: tasks.jsonl\n',
  );
  const [a, b, c, bad] = await Promise.all([
    ik('mix', '--config', 'mix.yaml', '--seed', '5', '-o', 'm1.jsonl', '--json'),
    ik('mix', '--config', 'mix.yaml', '--seed', '5', '-o', 'm2.jsonl', '-q'),
    ik('mix', '--config', 'mix.yaml', '--seed', '6', '-o', 'm3.jsonl', '-q'),
    ik('mix', '--config', 'bad-mix.yaml', '-o', 'm4.jsonl'),
  ]);
  assert.equal(a.code, 0, a.stderr);
  const summary = JSON.parse(a.stdout);
  assert.equal(summary.written, 900);
  assert.equal(summary.ended, 'total');
  // add has 600 examples, capped at 100; the 8 others have 60 each.
  const add = summary.sources.find((s: { name: string }) => s.name === 'add');
  assert.equal(add.size, 600);
  assert.ok(Math.abs(add.probability - 100 / 580) < 1e-12);
  assert.equal(
    summary.sources.reduce((n: number, s: { emitted: number }) => n + s.emitted, 0),
    900,
  );
  assert.equal(
    readFileSync(join(dir, 'm1.jsonl'), 'utf8'),
    readFileSync(join(dir, 'm2.jsonl'), 'utf8'),
  );
  assert.notEqual(
    readFileSync(join(dir, 'm1.jsonl'), 'utf8'),
    readFileSync(join(dir, 'm3.jsonl'), 'utf8'),
  );
  assert.equal(b.stderr, '');
  assert.equal(c.code, 0, c.stderr);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /bad-mix\.yaml:2, field 'capp': unknown key 'capp'/);
});

test('split: three levels on disk with a passing leak check; dedup and decontaminate reports', async () => {
  const dupes = [
    { instruction: 'Give three tips for staying healthy.', input: '', output: 'Eat, sleep, move.' },
    { instruction: 'give three tips for staying healthy', input: '', output: 'Eat, sleep, move!' },
    { instruction: 'Name a prime number.', input: '', output: '7' },
  ];
  writeFileSync(join(dir, 'dupes.jsonl'), `${dupes.map((d) => JSON.stringify(d)).join('\n')}\n`);
  writeFileSync(
    join(dir, 'eval.jsonl'),
    `${JSON.stringify({ task: 't', input: 'Name a prime number?', target: '7' })}\n`,
  );
  const [s, d, c] = await Promise.all([
    ik(
      'split',
      'tasks.jsonl',
      '--out-dir',
      'sp',
      '--held-out-categories',
      'order',
      '--held-out-tasks',
      'mul',
      '--supervised-fraction',
      '0.2',
      '--seed',
      '3',
    ),
    ik('dedup', 'dupes.jsonl', 'dd.jsonl', '--report', 'dd-report.jsonl'),
    ik(
      'decontaminate',
      'dupes.jsonl',
      'dc.jsonl',
      '--eval',
      'test=eval.jsonl',
      '--min-n',
      '4',
      '--eval-fields',
      'input',
      '--report',
      'dc-report.jsonl',
    ),
  ]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /leak check: ok/);
  const plan = JSON.parse(readFileSync(join(dir, 'sp', 'split_plan.json'), 'utf8'));
  assert.equal(plan.leak_check.ok, true);
  assert.deepEqual(plan.plan.heldOutCategories, ['order']);
  assert.equal(lines('sp/fully_held_out.jsonl').length, 120);
  assert.equal(lines('sp/partially_supervised.jsonl').length, 60);
  const total = ['train', 'fully_held_out', 'partially_supervised', 'fully_supervised'].reduce(
    (n, f) => n + lines(`sp/${f}.jsonl`).length,
    0,
  );
  assert.equal(total, taskLines.length);
  assert.ok(lines('sp/train.jsonl').every((l) => !/"(sort|max|mul)"/.test(l)));

  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /kept 2 of 3 instruction record\(s\)/);
  assert.deepEqual(JSON.parse(lines('dd-report.jsonl')[0]!), {
    index: 1,
    line: 2,
    kind: 'exact',
    duplicate_of: 0,
    duplicate_of_line: 1,
  });

  assert.equal(c.code, 0, c.stderr);
  assert.deepEqual(JSON.parse(lines('dc-report.jsonl')[0]!), {
    index: 2,
    line: 3,
    eval_set: 'test',
    eval_index: 0,
    ngram: 'name a prime number',
    eval_sets: ['test'],
    matches: 1,
  });
});

test('stats and inspect', async () => {
  const [st, ins] = await Promise.all([
    ik('stats', 'tasks.jsonl', '--json', '-q'),
    ik('inspect', 'tasks.jsonl', '-n', '2', '--offset', '600'),
  ]);
  assert.equal(st.code, 0, st.stderr);
  const s = JSON.parse(st.stdout);
  assert.equal(s.records, taskLines.length);
  assert.equal(s.tasks.add, 600);
  assert.equal(s.categories.math, 720);
  assert.equal(ins.code, 0, ins.stderr);
  assert.match(ins.stdout, /--- record 600 \(tasks\.jsonl:601\) \[task\]\n {2}task: add/);
  assert.match(ins.stdout, /2 of 602\+ record\(s\) shown/);
});

test('config files: relative paths resolved, flags override, errors located', async () => {
  const { loadConfig } = await import('../../src/data/config.ts');
  const { MixFilesConfig } = await import('../../src/data/mix-files.ts');
  const { ConfigError } = await import('../../src/util/errors.ts');
  const sub = join(dir, 'conf');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(sub, { recursive: true });
  const f = join(sub, 'm.yaml');
  writeFileSync(
    f,
    'cap: 10\nseed: 1\nsources:\n  - path: ../tasks.jsonl\n  - path: /abs/x.jsonl\n',
  );
  const c = await loadConfig(MixFilesConfig, f, { seed: 9, cap: undefined }, ['sources.*.path']);
  assert.deepEqual(
    c.sources.map((s) => s.path),
    [join(dir, 'tasks.jsonl'), '/abs/x.jsonl'],
  );
  assert.equal(c.seed, 9);
  assert.equal(c.cap, 10);
  writeFileSync(f, 'cap: 10\nsources:\n  - path: a.jsonl\n    weight: 2\n');
  await assert.rejects(
    loadConfig(MixFilesConfig, f, {}),
    (e) => e instanceof ConfigError && e.message.startsWith(`${f}:4, field 'sources.0.weight'`),
  );
  writeFileSync(f, 'cap: [1,\n');
  await assert.rejects(
    loadConfig(MixFilesConfig, f, {}),
    (e) => e instanceof ConfigError && /invalid YAML/.test(e.message),
  );
  writeFileSync(f, '- 1\n- 2\n');
  await assert.rejects(loadConfig(MixFilesConfig, f, {}), /expected a mapping/);
  await assert.rejects(
    loadConfig(MixFilesConfig, undefined, { sources: [{ path: 'a' }], cap: -1 }),
    (e) => e instanceof ConfigError && e.field === 'cap' && e.file === undefined,
  );
});

// Instruction records with an undetectable first record and two other bad lines.
const badInstr = [
  '{"foo":1}',
  '{"instruction":"Name a prime number.","input":"","output":"7"}',
  '{"instruction":"B","input":"",',
  '{"instruction":"C","input":"","output":2}',
  '{"instruction":"name a prime number","input":"","output":"7"}',
  '{"instruction":"Give three tips for staying healthy.","input":"","output":"Eat, sleep, move."}',
];
const badReasons = [
  /bad-instr\.jsonl:1: cannot detect the record kind from keys \[foo\]/,
  /bad-instr\.jsonl:3: invalid JSON/,
  /bad-instr\.jsonl:4: field 'output'/,
];
writeFileSync(join(dir, 'bad-instr.jsonl'), `${badInstr.join('\n')}\n`);

/** Checks the reason lines (after the header) against `res`, in order. */
function matchReasons(block: string[], res: RegExp[]): void {
  for (const [i, re] of res.entries()) assert.match(block[i + 1]!, re);
}

/** The "skipped N ...:" block of a summary, as lines. */
function skippedBlock(stdout: string): string[] {
  const all = stdout.split('\n');
  const at = all.findIndex((l) => l.startsWith('skipped '));
  assert.ok(at >= 0, `no skipped block in:\n${stdout}`);
  const out = [all[at]!];
  for (const l of all.slice(at + 1)) if (l.startsWith('  ')) out.push(l);
  return out;
}

test('--skip-invalid: dedup, decontaminate and mix list what they skipped (file:line: why)', async () => {
  writeFileSync(
    join(dir, 'bad-eval.jsonl'),
    ['{"task":"t","input":"Give three tips for staying healthy.","target":"x"}', '{"task":'].join(
      '\n',
    ),
  );
  const [strict, d, c, m] = await Promise.all([
    ik('dedup', 'bad-instr.jsonl', 'bd0.jsonl'),
    ik('dedup', 'bad-instr.jsonl', 'bd.jsonl', '--skip-invalid', '-q'),
    ik(
      'decontaminate',
      'bad-instr.jsonl',
      'bc.jsonl',
      '--eval',
      'bad-eval.jsonl',
      '--min-n',
      '4',
      '--eval-fields',
      'input',
      '--skip-invalid',
      '-q',
    ),
    ik(
      'mix',
      '--source',
      'bad-instr.jsonl',
      '--total',
      '30',
      '--on-exhausted',
      'repeat',
      '-o',
      'bm.jsonl',
      '--skip-invalid',
      '-q',
    ),
  ]);
  assert.equal(strict.code, 1);
  assert.match(strict.stderr, /bad-instr\.jsonl:1: cannot detect the record kind/);

  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /kept 2 of 3 instruction record\(s\)/);
  const dl = skippedBlock(d.stdout);
  assert.equal(dl[0], 'skipped 3 invalid record(s):');
  assert.equal(dl.length, 4);
  matchReasons(dl, badReasons);

  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /kept 2 of 3 instruction record\(s\)/);
  assert.match(c.stdout, /bad-eval\.jsonl: 1 eval record\(s\), 1 invalid skipped, removed 1/);
  const cl = skippedBlock(c.stdout);
  assert.equal(cl[0], 'skipped 4 invalid record(s):');
  matchReasons(cl, badReasons);
  assert.match(cl[4]!, /bad-eval\.jsonl:2: invalid JSON/);

  assert.equal(m.code, 0, m.stderr);
  assert.match(m.stdout, /mixed 30 instruction record\(s\)/);
  const ml = skippedBlock(m.stdout);
  assert.equal(ml[0], 'skipped 3 invalid record(s):');
  // The kind is known from the first valid record before the counting pass reads line 1.
  matchReasons(ml, [
    /bad-instr\.jsonl:1: field 'instruction': not a valid instruction record/,
    ...badReasons.slice(1),
  ]);
});

test('--skip-invalid: split lists the first five reasons and how many more', async () => {
  const rows = taskLines.slice(0, 120);
  for (let i = 0; i < 8; i++) rows.splice(10 * i + 5, 0, `{"task":"add","input":${i}}`);
  writeFileSync(join(dir, 'bad-tasks.jsonl'), `${rows.join('\n')}\n`);
  const badLines = rows.flatMap((l, i) =>
    l.includes('"input":') && !l.includes('target') ? [i + 1] : [],
  );
  assert.equal(badLines.length, 8);
  const s = await ik('split', 'bad-tasks.jsonl', '--out-dir', 'bsp', '--skip-invalid', '-q');
  assert.equal(s.code, 0, s.stderr);
  const sl = skippedBlock(s.stdout);
  assert.equal(sl[0], 'skipped 8 invalid record(s):');
  assert.equal(sl.length, 7);
  for (let i = 0; i < 5; i++)
    assert.match(sl[i + 1]!, new RegExp(`bad-tasks\\.jsonl:${badLines[i]}: field 'input'`));
  assert.equal(sl[6], '  ... and 3 more');
  const plan = JSON.parse(readFileSync(join(dir, 'bsp', 'split_plan.json'), 'utf8'));
  assert.equal(
    Object.values(plan.counts as Record<string, number>).reduce((a, b) => a + b, 0),
    120,
  );
});

// ag_news rows for `render --promptsource`; label 2 is "Business" in its answer choices.
// (ag_news templates from ../shared/data; the two render tests skip without it.)
const agNews = ifShared(() => sharedData('promptsource', 'ag_news', 'templates.yaml'), '');
const agTemplates = ifShared(
  () =>
    Object.keys(
      (parseDocument(readFileSync(agNews, 'utf8')).toJS() as { templates: object }).templates,
    ).length,
  0,
);
const agRows = [
  { text: 'Stocks rose sharply on Monday.', label: 2 },
  { text: 'The home team won the cup.', label: 1 },
].map((r) => JSON.stringify(r));

test('render --promptsource: every template over every row, progress, summary, --skip-invalid', {
  skip: noShared,
}, async () => {
  writeFileSync(join(dir, 'ag.jsonl'), `${agRows.join('\n')}\n`);
  writeFileSync(
    join(dir, 'ag-bad.jsonl'),
    `${[agRows[0], '{"text":', '[1]', agRows[1]].join('\n')}\n`,
  );
  const [r, strict, lax] = await Promise.all([
    ik('render', '--promptsource', agNews, '--records', 'ag.jsonl', '--out', 'ag-out.jsonl'),
    ik('render', '--promptsource', agNews, '--records', 'ag-bad.jsonl', '--out', 'ag-x.jsonl'),
    ik(
      'render',
      '--promptsource',
      agNews,
      '--records',
      'ag-bad.jsonl',
      '--out',
      'ag-lax.jsonl',
      '--skip-invalid',
      '--json',
      '-q',
    ),
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = lines('ag-out.jsonl').map((l) => JSON.parse(l));
  assert.equal(out.length, 2 * agTemplates);
  assert.ok(out.every((e) => e.task === 'ag_news'));
  // Template classify_question_first: "What label best describes this news article?\n{{text}}
  // ||| \n{{answer_choices[label] }}", split on ||| and stripped.
  assert.deepEqual(
    out.find((e) => e.template === 'classify_question_first'),
    {
      task: 'ag_news',
      template: 'classify_question_first',
      input: 'What label best describes this news article?\nStocks rose sharply on Monday.',
      target: 'Business',
      references: ['Business'],
      choices: ['World politics', 'Sports', 'Business', 'Science and technology'],
    },
  );
  assert.match(
    r.stdout,
    new RegExp(
      `^wrote ${2 * agTemplates} task example\\(s\\) from 2 row\\(s\\) to ag-out\\.jsonl\\n {2}ag_news +${2 * agTemplates}\\n`,
    ),
  );
  assert.match(r.stderr, /render: done, 2 rows/);

  assert.equal(strict.code, 1);
  assert.match(strict.stderr, /ag-bad\.jsonl:2: invalid JSON/);
  assert.ok(!existsSync(join(dir, 'ag-x.jsonl')), 'partial output is removed');

  assert.equal(lax.code, 0, lax.stderr);
  const summary = JSON.parse(lax.stdout);
  assert.equal(summary.written, 2 * agTemplates);
  assert.equal(summary.skipped, 2);
  assert.match(summary.reasons[0], /ag-bad\.jsonl:2: invalid JSON/);
  assert.match(summary.reasons[1], /ag-bad\.jsonl:3: a dataset row must be a JSON object/);
  assert.equal(lines('ag-lax.jsonl').length, 2 * agTemplates);
});

test('render streams: examples of a row are written before the next row arrives', {
  skip: noShared,
}, async () => {
  const fifo = join(dir, 'rows.fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  const out = join(dir, 'streamed.jsonl');
  const run = ik('render', '--promptsource', agNews, '--records', fifo, '--out', out, '-q');
  const w = createWriteStream(fifo);
  try {
    w.write(`${agRows[0]}\n`);
    const written = () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').length - 1 : 0);
    const until = Date.now() + 30_000;
    while (written() < agTemplates && Date.now() < until) await sleep(50);
    assert.equal(
      written(),
      agTemplates,
      "the first row's examples are on disk while input is open",
    );
  } finally {
    w.end(`${agRows[1]}\n`);
  }
  const r = await run;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(lines('streamed.jsonl').length, 2 * agTemplates);
});

test('inspect --sample shows a progress report; --skip-invalid lists what it skipped', async () => {
  // Sampling itself (seeded, uniform, one pass) is tested on inspectFile in test/data/jobs.
  const [a, bi] = await Promise.all([
    ik('inspect', 'tasks.jsonl', '--sample', '-n', '4', '--seed', '3'),
    ik('inspect', 'bad-instr.jsonl', '-n', '5', '--skip-invalid', '-q'),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal((a.stdout.match(/^--- record \d+ /gm) ?? []).length, 4);
  assert.match(a.stdout, /4 of 1,080 record\(s\) shown/);
  assert.match(a.stderr, /sample: done, 1,080 records/);
  assert.equal(bi.code, 0, bi.stderr);
  assert.match(bi.stdout, /--- record 1 \(bad-instr\.jsonl:2\) \[instruction\]/);
  const il = skippedBlock(bi.stdout);
  assert.equal(il[0], 'skipped 3 invalid record(s):');
  matchReasons(il, badReasons);
});
