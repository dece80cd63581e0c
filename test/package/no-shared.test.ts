// A clone with no ../shared/data beside it, as a new user has: a copy of test/, bench/ and .ci/
// in a temporary folder (src/, bin/, scripts/ and node_modules linked), with no `shared` next
// to it. The tests that read the reference data must be skipped with the reason and counted, the
// rest must pass; the benchmark that needs it and .ci/run must stop with a clear message.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot } from '../helpers/shared.ts';

let dir = '';
let clone = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ik-noshared-'));
  clone = join(dir, 'instructkit');
  mkdirSync(clone);
  for (const d of ['test', 'bench', '.ci'])
    cpSync(join(repoRoot, d), join(clone, d), { recursive: true });
  for (const f of ['src', 'bin', 'scripts', 'node_modules', 'package.json', 'tsconfig.json'])
    symlinkSync(join(repoRoot, f), join(clone, f));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('tests on ../shared/data are skipped with the reason and counted; the others pass', () => {
  // Two files with module-level reads of the data and tests that need it, plus ones that don't.
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      '--test-reporter=tap',
      'test/data/rouge.test.ts',
      'test/data/natinst.test.ts',
    ],
    // Without NODE_TEST_CONTEXT (set by the runner of this file) the child reports as a top run.
    { cwd: clone, encoding: 'utf8', env: { ...process.env, NODE_TEST_CONTEXT: undefined } },
  );
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  const count = (what: string) =>
    Number(r.stdout.match(new RegExp(`^# ${what} (\\d+)$`, 'm'))?.[1]);
  assert.equal(count('fail'), 0);
  assert.equal(count('skipped'), 9, r.stdout);
  assert.ok(count('pass') >= 6, r.stdout);
  const reasons = r.stdout.match(/# SKIP .*/g) ?? [];
  assert.equal(reasons.length, 9);
  for (const why of reasons) assert.match(why, /needs the reference data in \.\.\/shared\/data/);
});

test('bench/rouge-filter stops with a message naming the missing folder', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/rouge-filter.ts', '100'], {
    cwd: clone,
    encoding: 'utf8',
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /needs the 175 Self-Instruct seed tasks from \.\.\/shared\/data/);
  assert.match(r.stderr, /seed_tasks\.jsonl is missing/);
});

test('.ci/run refuses to run without ../shared/data, before installing anything', () => {
  // npm and npx stand-ins: reaching them means .ci/run went on without the data.
  const fake = join(dir, 'fake-bin');
  mkdirSync(fake, { recursive: true });
  for (const name of ['npm', 'npx']) {
    writeFileSync(join(fake, name), '#!/bin/sh\necho "$0 was reached" >&2\nexit 97\n');
    chmodSync(join(fake, name), 0o755);
  }
  const r = spawnSync(join(clone, '.ci', 'run'), [], {
    cwd: clone,
    encoding: 'utf8',
    env: { ...process.env, PATH: `${fake}:${process.env.PATH}` },
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /\.\.\/shared\/data is missing/);
  assert.doesNotMatch(r.stderr, /was reached/);
});
