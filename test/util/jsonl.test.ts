import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DataError } from '../../src/util/errors.ts';
import {
  DurableJsonlAppender,
  newSkipReport,
  readJsonl,
  writeJsonl,
} from '../../src/util/jsonl.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-jsonl-'));

test('round trip with line numbers, blank lines skipped', async () => {
  const p = join(dir, 'a.jsonl');
  await writeJsonl(p, [{ a: 1 }, { a: 2 }]);
  appendFileSync(p, '\n{"a":3}\n');
  const got = [];
  for await (const l of readJsonl(p)) got.push(l);
  assert.deepEqual(got, [
    { value: { a: 1 }, line: 1 },
    { value: { a: 2 }, line: 2 },
    { value: { a: 3 }, line: 4 },
  ]);
});

test('malformed line names file and line; skipInvalid counts it', async () => {
  const p = join(dir, 'bad.jsonl');
  writeFileSync(p, '{"a":1}\n{"a":\n{"a":3}\n');
  await assert.rejects(
    async () => {
      for await (const _ of readJsonl(p));
    },
    (e: unknown) =>
      e instanceof DataError && e.line === 2 && e.file === p && /bad\.jsonl:2/.test(e.message),
  );
  const report = newSkipReport();
  const got = [];
  for await (const l of readJsonl(p, { skipInvalid: true, report })) got.push(l.value);
  assert.deepEqual(got, [{ a: 1 }, { a: 3 }]);
  assert.equal(report.skipped, 1);
  assert.match(report.reasons[0]!, /:2: invalid JSON/);
});

test('missing file is a DataError naming the file', async () => {
  await assert.rejects(async () => {
    for await (const _ of readJsonl(join(dir, 'nope.jsonl')));
  }, /nope\.jsonl: file not found/);
});

test('durable appender cuts a torn last line and keeps complete ones', () => {
  const p = join(dir, 'torn.jsonl');
  writeFileSync(p, '{"a":1}\n{"a":2}\n{"a":');
  const w = new DurableJsonlAppender(p);
  assert.equal(w.repairedBytes, 5);
  w.append({ a: 3 });
  w.close();
  assert.equal(readFileSync(p, 'utf8'), '{"a":1}\n{"a":2}\n{"a":3}\n');
});
