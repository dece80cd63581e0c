// Inputs bench/fuzz found that broke the eval task loader; each must now be a typed error.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseYamlDocument } from '../../src/data/yaml.ts';
import { loadTaskFile } from '../../src/eval/task.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { fixture } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-fuzz-task-'));
const TASK =
  'task: t\ndoc_to_text: "{{q}}"\ndoc_to_target: "{{a}}"\nmetric_list: [{metric: exact_match}]\n';

test("a task's dataset_path .json that is not valid JSON is a DataError naming the file", () => {
  writeFileSync(join(dir, 'docs.json'), '[{"q": "2+2?", "a": "4"},');
  const p = join(dir, 'task.yaml');
  writeFileSync(p, `${TASK}dataset_path: docs.json\n`);
  assert.throws(
    () => loadTaskFile(p),
    (e: unknown) =>
      e instanceof DataError && e.file === join(dir, 'docs.json') && /invalid JSON/.test(e.message),
  );
});

test('a task YAML whose aliases explode is a ConfigError naming the file', () => {
  const p = join(dir, 'laughs.yaml');
  writeFileSync(
    p,
    `${TASK}a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n`,
  );
  assert.throws(
    () => loadTaskFile(p),
    (e: unknown) => e instanceof ConfigError && e.file === p && /invalid YAML/.test(e.message),
  );
});

test('a task YAML with ~34,000 syntax errors fails on the first one without composing the rest', () => {
  // bench/fuzz: composing all of them took ~2 s with pretty errors off; only the first is shown.
  const raw = readFileSync(fixture('fuzz', 'yaml', 'task-many-errors.txt'), 'utf8');
  const text = raw.split('\n#---docs---\n')[0]!;
  const doc = parseYamlDocument(text, { prettyErrors: false });
  assert.equal(doc.errors.length, 1, 'parsing stops at the first error');
  assert.match(doc.errors[0]!.message, /flow-map-start/);
  const p = join(dir, 'many-errors.yaml');
  writeFileSync(p, text);
  assert.throws(
    () => loadTaskFile(p),
    (e: unknown) =>
      e instanceof ConfigError && e.message.includes(p) && /line 7\b|:7\b/.test(e.message),
  );
});
