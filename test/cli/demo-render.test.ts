import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { noShared, repoRoot, sharedData } from '../helpers/shared.ts';

const cli = (args: string[]) =>
  spawnSync(process.execPath, [join(repoRoot, 'bin', 'instructkit.js'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
  });

test('`data render` writes the built-in collection as task examples', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-render-'));
  const r = cli([
    'data',
    'render',
    '--builtin',
    '--variants',
    'zero_shot,cot',
    '--categories',
    'sequences',
    '--out',
    join(dir, 'b.jsonl'),
  ]);
  assert.equal(r.status, 0, r.stderr);
  const rows = readFileSync(join(dir, 'b.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.ok(rows.every((x) => x.category === 'sequences'));
  assert.ok(rows.some((x) => x.template.includes(':cot:')));
  const bad = cli([
    'data',
    'render',
    '--builtin',
    '--variants',
    'zero-shot',
    '--out',
    join(dir, 'x.jsonl'),
  ]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /unknown variant 'zero-shot'/);
});

test('`data render --natinst` writes Super-NI tasks as task examples', { skip: noShared }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-render-'));
  const n = cli([
    'data',
    'render',
    '--natinst',
    sharedData('natural-instructions', 'task1146_country_capital.EXCERPT.json'),
    '--out',
    join(dir, 'n.jsonl'),
  ]);
  assert.equal(n.status, 0, n.stderr);
  assert.match(readFileSync(join(dir, 'n.jsonl'), 'utf8'), /Now complete the following example/);
});

test('`demo --quick` runs every stage and writes results, report, HF model and GGUF', () => {
  const out = mkdtempSync(join(tmpdir(), 'ik-demo-'));
  const r = cli(['demo', '--quick', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  for (const k of ['heldout_base', 'heldout_tuned', 'seen_base', 'seen_tuned'])
    assert.equal(typeof res[k], 'number', k);
  assert.ok(res.n_heldout > 0 && res.n_seen > 0);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.ok((html.match(/<svg/g) ?? []).length >= 2, 'loss and accuracy charts are inline SVG');
  assert.match(html, /<table class="ik-eval">/);
  assert.ok(!/<script/.test(html), 'viewable offline: no scripts');
  for (const f of [
    'tuned/config.json',
    'tuned/model.safetensors',
    'tuned/tokenizer.json',
    'tuned.gguf',
    'base/model.safetensors',
  ])
    assert.ok(existsSync(join(out, f)), f);
  assert.match(r.stdout, /held-out categories/);
});
