import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildProgram } from '../../src/cli/commands.ts';
import { progress } from '../../src/util/progress.ts';
import { fixture, repoRoot } from '../helpers/shared.ts';

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

test('every data command is registered with --help text', () => {
  const data = buildProgram().commands.find((c) => c.name() === 'data')!;
  const names = data.commands.map((c) => c.name());
  for (const n of ['convert', 'mix', 'split', 'dedup', 'decontaminate', 'stats', 'inspect'])
    assert.ok(names.includes(n), n);
  const mix = data.commands.find((c) => c.name() === 'mix')!;
  assert.match(mix.helpInformation(), /--cap <n>/);
  const dd = data.commands.find((c) => c.name() === 'dedup')!;
  assert.match(dd.helpInformation(), /--threshold <j>/);
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
