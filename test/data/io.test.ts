import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parquetWriteFile } from 'hyparquet-writer';
import {
  detectFileKind,
  formatOf,
  newReadReport,
  readLocatedRecords,
  readRecords,
  writeRecords,
} from '../../src/data/io.ts';
import type { RecordKind } from '../../src/data/records.ts';
import { ConfigError, DataError, FormatError } from '../../src/util/errors.ts';
import { fixture, noShared, sharedData } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-io-'));

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const samples: Record<RecordKind, unknown[]> = {
  instruction: [
    { instruction: 'Add the numbers.', input: '2 3', output: '5' },
    { instruction: 'Say hi in French. "Quoted", \\ and ünïcödé 🙂', input: '', output: 'Bonjour' },
  ],
  prompt_completion: [{ prompt: 'a\nb', completion: 'c' }],
  chat: [
    {
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'hello', tool_calls: [{ id: 't1', type: 'function' }] },
        { role: 'tool', content: '42', tool_call_id: 't1', name: 'calc' },
      ],
    },
    { messages: [{ role: 'user', content: '' }] },
  ],
  preference: [{ prompt: 'p', chosen: 'good', rejected: 'bad' }],
  ranking: [{ prompt: 'p', completions: ['x', 'y', 'z'], ranking: [1, 0, 1] }],
  task: [
    { task: 't1', category: 'c', input: 'in', target: 'out', references: ['out', 'OUT'], id: 'a1' },
    { task: 't2', input: 'in2', target: 'out2', choices: ['yes', 'no'] },
  ],
};

for (const kind of Object.keys(samples) as RecordKind[]) {
  for (const ext of ['jsonl', 'json', 'parquet']) {
    test(`round trip ${kind} through .${ext}`, async () => {
      const p = join(dir, `${kind}.${ext}`);
      const n = await writeRecords(p, samples[kind]!, { kind });
      assert.equal(n, samples[kind]!.length);
      const report = newReadReport();
      const back = await all(readRecords(p, { report }));
      assert.deepEqual(back, samples[kind]);
      assert.equal(report.kind, kind);
      assert.equal(report.read, n);
      assert.equal(await detectFileKind(p), kind);
    });
  }
}

test('Parquet streams row group by row group with row indices', async () => {
  const p = join(dir, 'many.parquet');
  const recs = Array.from({ length: 2500 }, (_, i) => ({ prompt: `p${i}`, completion: `c${i}` }));
  await writeRecords(p, recs, { rowGroupSize: 1000 });
  const got = await all(readLocatedRecords(p));
  assert.equal(got.length, 2500);
  assert.equal(got[2499]!.row, 2499);
  assert.deepEqual(got[1234]!.record, recs[1234]);
});

test('readRecords reads the shared Self-Instruct seed file and Alpaca-shaped JSON', {
  skip: noShared,
}, async () => {
  // seed_tasks.jsonl has extra keys, so it is not an instruction record: the error names the key.
  await assert.rejects(
    all(readRecords(sharedData('self-instruct', 'seed_tasks.jsonl'))),
    (e) => e instanceof DataError && /seed_tasks\.jsonl:1/.test(e.message),
  );
  const got = await all(readRecords(fixture('data', 'alpaca_small.json')));
  assert.equal(got.length, 3);
  assert.deepEqual(got[2], { instruction: 'Translate to French.', input: 'cat', output: 'chat' });
});

test('malformed JSONL line -> file:line', async () => {
  const p = join(dir, 'bad.jsonl');
  writeFileSync(
    p,
    '{"prompt":"a","completion":"b"}\n{"prompt": "x",\n{"prompt":"c","completion":"d"}\n',
  );
  await assert.rejects(
    all(readRecords(p)),
    (e) => e instanceof DataError && e.line === 2 && e.message.includes(`${p}:2`),
  );
});

test('wrong field type -> file:line and field path', async () => {
  const p = join(dir, 'type.jsonl');
  writeFileSync(
    p,
    `${JSON.stringify({ messages: [{ role: 'user', content: 'a' }] })}\n${JSON.stringify({
      messages: [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: 3 },
      ],
    })}\n`,
  );
  await assert.rejects(all(readRecords(p)), (e) => {
    assert.ok(e instanceof DataError);
    assert.equal(e.line, 2);
    assert.equal(e.field, 'messages.1.content');
    assert.match(e.message, /type\.jsonl:2, field 'messages\.1\.content': not a valid chat record/);
    return true;
  });
});

test('unknown key is named; unknown kind is a ConfigError; undetectable kind names the keys', async () => {
  const p = join(dir, 'extra.jsonl');
  writeFileSync(p, `${JSON.stringify({ prompt: 'a', completion: 'b', score: 1 })}\n`);
  await assert.rejects(
    all(readRecords(p)),
    (e) => e instanceof DataError && e.field === 'score' && /unknown key 'score'/.test(e.message),
  );
  await assert.rejects(
    all(readRecords(p, { kind: 'alpacca' })),
    (e) =>
      e instanceof ConfigError &&
      /unknown record kind 'alpacca'/.test(e.message) &&
      /instruction, prompt_completion/.test(e.message),
  );
  const q = join(dir, 'what.jsonl');
  writeFileSync(q, '{"question":"q","answer":"a"}\n');
  await assert.rejects(
    all(readRecords(q)),
    (e) => e instanceof DataError && /what\.jsonl:1.*\[question, answer\]/.test(e.message),
  );
  assert.throws(() => formatOf('x.csv'), ConfigError);
});

test('JSON file that is not an array; malformed element -> its line; bad field -> line + field', async () => {
  const obj = join(dir, 'obj.json');
  writeFileSync(obj, '\n\n{"instruction":"a","input":"","output":"b"}\n');
  await assert.rejects(
    all(readRecords(obj)),
    (e) =>
      e instanceof DataError &&
      e.line === 3 &&
      /expected a JSON array of records, found an object/.test(e.message),
  );
  const bad = join(dir, 'badel.json');
  writeFileSync(
    bad,
    '[\n  {"instruction": "a", "input": "", "output": "b"},\n  {"instruction": "c",\n   "output": }\n]\n',
  );
  await assert.rejects(
    all(readRecords(bad)),
    (e) => e instanceof DataError && e.line === 3 && e.message.startsWith(`${bad}:3: invalid JSON`),
  );
  const typed = join(dir, 'typed.json');
  writeFileSync(
    typed,
    '[\n{"instruction": "a", "input": "", "output": "b"},\n{"instruction": "c", "input": 5, "output": "d"}\n]',
  );
  await assert.rejects(
    all(readRecords(typed)),
    (e) => e instanceof DataError && e.line === 3 && e.field === 'input',
  );
  const trunc = join(dir, 'trunc.json');
  writeFileSync(trunc, '[\n{"instruction": "a", "input": "", "output": "b"},\n{"instruction": "c"');
  await assert.rejects(
    all(readRecords(trunc)),
    (e) => e instanceof DataError && e.line === 3 && /unterminated/.test(e.message),
  );
});

test('corrupt Parquet -> FormatError naming the file', async () => {
  const p = join(dir, 'corrupt.parquet');
  writeFileSync(p, 'PAR1 this is not parquet at all PAR0');
  await assert.rejects(
    all(readRecords(p)),
    (e) =>
      e instanceof FormatError &&
      e.file === p &&
      e.message.startsWith(`${p}: not a readable Parquet file`),
  );
  // A valid footer with a damaged data page: the row group is named.
  const good = join(dir, 'damage.parquet');
  await writeRecords(
    good,
    Array.from({ length: 50 }, (_, i) => ({
      prompt: `prompt number ${i}`,
      completion: 'x'.repeat(i),
    })),
  );
  const buf = readFileSync(good);
  for (let i = 8; i < 200; i++) buf[i] = 0xff;
  const dmg = join(dir, 'damaged.parquet');
  writeFileSync(dmg, buf);
  await assert.rejects(
    all(readRecords(dmg)),
    (e) => e instanceof FormatError && /row group 0 \(rows 0\.\.49\)/.test(e.message),
  );
});

test('wrong field type or null in Parquet names the row index and field', async () => {
  // A file written by another tool: completion is an INT32 column.
  const p = join(dir, 'ints.parquet');
  parquetWriteFile({
    filename: p,
    columnData: [
      { name: 'prompt', data: ['a', 'b', 'c'], type: 'STRING' },
      { name: 'completion', data: [1, 2, 3], type: 'INT32' },
    ],
  });
  await assert.rejects(all(readRecords(p)), (e) => {
    assert.ok(e instanceof DataError);
    assert.equal(e.field, 'completion');
    assert.equal(e.line, undefined);
    assert.match(
      e.message,
      /ints\.parquet, field 'completion': row 0: .*expected string, received number/,
    );
    return true;
  });
  const q = join(dir, 'nulls.parquet');
  parquetWriteFile({
    filename: q,
    columnData: [
      { name: 'prompt', data: ['a', 'b', 'c'], type: 'STRING' },
      { name: 'completion', data: ['x', null, 'z'], type: 'STRING' },
    ],
  });
  await assert.rejects(
    all(readRecords(q)),
    (e) => e instanceof DataError && /row 1: /.test(e.message) && e.field === 'completion',
  );
  const report = newReadReport();
  assert.equal((await all(readRecords(q, { skipInvalid: true, report }))).length, 2);
  assert.match(report.reasons[0]!, /nulls\.parquet row 1: field 'completion'/);
});

test('skipInvalid counts and reports every skipped record with its location', async () => {
  const p = join(dir, 'mixed.jsonl');
  writeFileSync(
    p,
    [
      '{"prompt":"a","completion":"b"}',
      '{"prompt":',
      '{"prompt":"c","completion":7}',
      '',
      '{"prompt":"e","completion":"f","x":1}',
      '{"prompt":"g","completion":"h"}',
    ].join('\n'),
  );
  const report = newReadReport();
  const got = await all(readRecords(p, { skipInvalid: true, report }));
  assert.deepEqual(got, [
    { prompt: 'a', completion: 'b' },
    { prompt: 'g', completion: 'h' },
  ]);
  assert.equal(report.skipped, 3);
  assert.equal(report.read, 2);
  assert.match(report.reasons[0]!, /mixed\.jsonl:2: invalid JSON/);
  assert.match(report.reasons[1]!, /mixed\.jsonl:3: field 'completion'/);
  assert.match(report.reasons[2]!, /mixed\.jsonl:5: field 'x'/);
  const j = join(dir, 'mixed.json');
  writeFileSync(
    j,
    '[{"prompt":"a","completion":"b"},\n{"prompt":},\n{"prompt":"c","completion":"d"}]',
  );
  const r2 = newReadReport();
  assert.equal((await all(readRecords(j, { skipInvalid: true, report: r2 }))).length, 2);
  assert.equal(r2.skipped, 1);
  assert.match(r2.reasons[0]!, /mixed\.json:2: invalid JSON/);
});

test('writeRecords validates before writing and names the record', async () => {
  await assert.rejects(
    writeRecords(join(dir, 'w.jsonl'), [{ prompt: 'a', completion: 'b' }, { prompt: 'a' }]),
    (e) =>
      e instanceof DataError &&
      /record 1 is not a valid prompt_completion record/.test(e.message) &&
      e.field === 'completion',
  );
  assert.equal(await writeRecords(join(dir, 'empty.json'), []), 0);
  assert.deepEqual(await all(readRecords(join(dir, 'empty.json'))), []);
});

test('skipInvalid: an undetectable first record is skipped and detection moves on', async () => {
  const p = join(dir, 'first-unknown.jsonl');
  writeFileSync(
    p,
    [
      '{"foo":1}',
      '"just a string"',
      '{"prompt":"a","completion":"b"}',
      '{"instruction":"i","input":"","output":"o"}',
      '{"prompt":"c","completion":"d"}',
    ].join('\n'),
  );
  await assert.rejects(
    all(readRecords(p)),
    (e) =>
      e instanceof DataError &&
      e.line === 1 &&
      /cannot detect the record kind from keys \[foo\]/.test(e.message),
  );
  const report = newReadReport();
  const got = await all(readLocatedRecords(p, { skipInvalid: true, report }));
  assert.deepEqual(
    got.map((r) => [r.line, r.kind]),
    [
      [3, 'prompt_completion'],
      [5, 'prompt_completion'],
    ],
  );
  assert.equal(report.kind, 'prompt_completion');
  assert.equal(report.skipped, 3);
  assert.match(report.reasons[0]!, /first-unknown\.jsonl:1: cannot detect the record kind/);
  assert.match(report.reasons[1]!, /first-unknown\.jsonl:2: cannot detect .*\[string\]/);
  // Once the kind is fixed, a record of another kind is an invalid one of this kind.
  assert.match(report.reasons[2]!, /first-unknown\.jsonl:4: .*not a valid prompt_completion/);
  assert.equal(await detectFileKind(p, { skipInvalid: true }), 'prompt_completion');
});

test('skipInvalid without a report is refused: skipped records must be counted somewhere', async () => {
  const p = join(dir, 'no-report.jsonl');
  writeFileSync(p, '{"prompt":"a","completion":"b"}\n');
  await assert.rejects(
    // @ts-expect-error the options type requires a report with skipInvalid
    all(readRecords(p, { skipInvalid: true })),
    (e) => e instanceof ConfigError && e.field === 'report',
  );
});
