// Runs the node:test suites under test/ through tsx. Node 20's --test does not expand globs,
// so the files are collected here. Usage: npm test [-- <path-prefix> ...]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function collect(dir, out) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (name === 'fixtures' || name === 'node_modules') continue;
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

const filters = process.argv.slice(2);
const files = collect(join(root, 'test'), []).filter(
  (f) => filters.length === 0 || filters.some((x) => f.startsWith(x) || f.includes(x)),
);
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const args = [
  '--import',
  'tsx',
  '--test',
  '--test-reporter=spec',
  '--test-timeout=900000',
  ...files,
];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
