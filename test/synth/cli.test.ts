// `instructkit synth self-instruct | alpaca` as a user runs it, against the scripted server:
// a progress report per stage on stderr (plain lines, since stderr is not a terminal here) with
// kept / target, rejects by reason and cost, and the final report on stdout listing every
// reject reason with its count, checked against the run's report.json.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ifShared, noShared, repoRoot, sharedData } from '../helpers/shared.ts';
import { fakeLlm, type ScriptedServer, startScriptedServer } from './scripted-server.ts';

// Every test here runs on the Self-Instruct seeds from ../shared/data and skips without them.
const seedTasks = ifShared(() => sharedData('self-instruct', 'seed_tasks.jsonl'), '');
let server: ScriptedServer;
before(async () => {
  server = await startScriptedServer(fakeLlm);
});
after(async () => {
  await server?.close();
});

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'instructkit.js'), ...args], {
    cwd: repoRoot,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

function setup(kind: string) {
  const dir = mkdtempSync(join(tmpdir(), `ik-cli-${kind}-`));
  const config = join(dir, 'synth.yaml');
  writeFileSync(
    config,
    'client:\n  prices:\n    fake:\n      prompt_per_1m: 1000\n      completion_per_1m: 3000\n',
  );
  const out = join(dir, 'out');
  const args = [
    'synth',
    kind,
    '--config',
    config,
    '--seed-tasks',
    seedTasks,
    '--endpoint',
    server.url,
    '--model',
    'fake',
    '--seed',
    '4',
    '--out',
    out,
  ];
  return { out, args };
}

/** The indented `reason count` lines after `heading`, as a map. */
function block(stdout: string, heading: string): Record<string, number> {
  const lines = stdout.split('\n');
  const start = lines.indexOf(heading);
  assert.ok(start >= 0, `no line '${heading}' in:\n${stdout}`);
  const out: Record<string, number> = {};
  for (const l of lines.slice(start + 1)) {
    const m = /^ {2}(\S+) +(\d+)$/.exec(l);
    if (!m) break;
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** `reason n, reason n` from a progress line's `rejected:` part. */
function rejectedOf(line: string): Record<string, number> {
  const m = /rejected: ([^|]*) \|/.exec(line);
  assert.ok(m, line);
  if (m[1] === 'none') return {};
  return Object.fromEntries(
    m[1]!.split(', ').map((p) => {
      const [k, n] = p.split(' ');
      return [k!, Number(n)];
    }),
  );
}

test('synth self-instruct: a progress line per stage and the final reject-reason report', {
  skip: noShared,
}, async () => {
  const { out, args } = setup('self-instruct');
  const r = await cli([...args, '--target', '15']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  assert.ok(Object.keys(report.rejected_instructions).length >= 3);
  assert.ok(report.usage.network.cost_usd > 0);

  const lines = r.stdout.split('\n');
  assert.equal(
    lines[0],
    `self-instruct: ${report.records} records written to ${join(out, 'data.jsonl')}`,
  );
  const kept = `instructions: ${report.instructions} kept (${report.classification_tasks} classification); rejected by reason:`;
  assert.deepEqual(block(r.stdout, kept), report.rejected_instructions);
  const inst = `instances: ${report.instances} kept; rejected by reason:`;
  if (Object.keys(report.rejected_instances).length > 0)
    assert.deepEqual(block(r.stdout, inst), report.rejected_instances);
  else assert.ok(lines.includes(inst) && lines[lines.indexOf(inst) + 1] === '  (none)');
  assert.ok(
    lines.includes(
      `requests: ${report.usage.network.requests} over the network, 0 from cache, 0 retries`,
    ),
  );
  assert.ok(r.stdout.includes(`cost $${report.usage.network.cost_usd.toFixed(4)}`));

  // Progress: each stage ends with a 'done' line carrying the rejects so far and the cost.
  const done = (stage: string, unit: string) => {
    const l = r.stderr
      .split('\n')
      .find((x) => x.startsWith(`self-instruct ${stage}: done, `) && x.includes(` ${unit} in `));
    assert.ok(l, `no done line for ${stage} in:\n${r.stderr}`);
    return l;
  };
  const first = done('instructions', `${report.instructions} kept`);
  assert.deepEqual(rejectedOf(first), report.rejected_instructions);
  assert.match(first, /\| requests \d+ \(\+0 cached\) \| \$\d+\.\d{4}$/);
  done('classification', `${report.instructions} classified`);
  const last = done('instances', `${report.instructions} with instances`);
  assert.ok(last.endsWith(`$${report.usage.network.cost_usd.toFixed(4)}`), last);
});

test('synth alpaca: the final report lists every reject reason with its count', {
  skip: noShared,
}, async () => {
  const { out, args } = setup('alpaca');
  const r = await cli([...args, '--target', '20']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  assert.ok(Object.keys(report.rejected).length >= 1);
  assert.deepEqual(block(r.stdout, 'rejected candidates by reason:'), report.rejected);
  const l = r.stderr.split('\n').find((x) => x.startsWith('alpaca instructions: done, '));
  assert.ok(l?.includes(` ${report.records} kept in `), r.stderr);
  assert.deepEqual(rejectedOf(l!), report.rejected);
});
