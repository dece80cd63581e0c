import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runAlpaca } from '../../src/synth/alpaca.ts';
import { LlmClient } from '../../src/synth/client.ts';
import { runSelfInstruct } from '../../src/synth/self-instruct.ts';
import { ifShared, noShared, repoRoot, sharedData } from '../helpers/shared.ts';
import { fakeLlm, type ScriptedServer, startScriptedServer } from './scripted-server.ts';

// Every test here runs on the Self-Instruct seeds from ../shared/data and skips without them.
const seedTasks = ifShared(() => sharedData('self-instruct', 'seed_tasks.jsonl'), '');
const servers: ScriptedServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});
async function serve(script: Parameters<typeof startScriptedServer>[0]): Promise<ScriptedServer> {
  const s = await startScriptedServer(script);
  servers.push(s);
  return s;
}
const tmp = (p: string): string => mkdtempSync(join(tmpdir(), `ik-${p}-`));
const lines = (path: string): unknown[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));

function client(url: string, extra: Record<string, unknown> = {}): LlmClient {
  return new LlmClient({
    endpoints: [{ base_url: url }],
    model: 'fake',
    backoff_initial_ms: 5,
    backoff_max_ms: 20,
    ...extra,
  });
}

test('Self-Instruct end to end: prompts of 6 seed + 2 machine, filters with reasons, instances', {
  skip: noShared,
}, async () => {
  const s = await serve(fakeLlm);
  const out = tmp('si');
  const report = await runSelfInstruct(
    { seed_tasks: seedTasks, out_dir: out, target: 40, seed: 3 },
    { client: client(s.url) },
  );
  assert.ok(report.instructions === 40);
  assert.ok((report.rejected_instructions.blacklisted ?? 0) > 0);
  assert.ok((report.rejected_instructions.too_short ?? 0) > 0);
  assert.ok((report.rejected_instructions.starts_with_punctuation ?? 0) > 0);
  assert.ok((report.rejected_instructions.too_similar ?? 0) > 0);
  const records = lines(join(out, 'data.jsonl')) as {
    instruction: string;
    input: string;
    output: string;
  }[];
  assert.ok(records.length >= 40, `${records.length} records`);
  assert.ok(records.every((r) => r.output.trim() !== '' && r.input !== r.output));

  const seeds = new Set(
    (lines(seedTasks) as { instruction: string }[]).map((t) =>
      t.instruction.replace(/\s+/g, ' ').trim().replace(/:+$/, ''),
    ),
  );
  const genPrompts = s.requests.map((r) => r.body.prompt as string).filter((p) => /\n9\.$/.test(p));
  const shown = (p: string) => [...p.matchAll(/^\d\. (.*)$/gm)].map((m) => m[1]!);
  assert.equal(shown(genPrompts[0]!).length, 8);
  assert.ok(
    shown(genPrompts[0]!).every((x) => seeds.has(x)),
    'the first round shows only seed tasks',
  );
  const last = shown(genPrompts[genPrompts.length - 1]!);
  assert.equal(
    last.filter((x) => !seeds.has(x)).length,
    2,
    'later rounds show 2 machine instructions',
  );
  // Classification tasks are generated output-first, the others input-first.
  const instancePrompts = s.requests
    .map((r) => r.body.prompt as string)
    .filter((p) => p.includes('\nTask: ') && p.endsWith('\n'));
  assert.equal(instancePrompts.length, 40);
  assert.ok(instancePrompts.some((p) => p.startsWith('For each classification task')));
  assert.ok(instancePrompts.some((p) => p.startsWith('For each task')));
});

test('Self-Instruct is deterministic, and a finished run re-runs without requests', {
  skip: noShared,
}, async () => {
  const s = await serve(fakeLlm);
  const a = tmp('si-a');
  const b = tmp('si-b');
  await runSelfInstruct(
    { seed_tasks: seedTasks, out_dir: a, target: 25, seed: 9 },
    { client: client(s.url) },
  );
  await runSelfInstruct(
    { seed_tasks: seedTasks, out_dir: b, target: 25, seed: 9 },
    { client: client(s.url) },
  );
  assert.equal(
    readFileSync(join(a, 'data.jsonl'), 'utf8'),
    readFileSync(join(b, 'data.jsonl'), 'utf8'),
  );
  const c = client(s.url);
  await runSelfInstruct({ seed_tasks: seedTasks, out_dir: a, target: 25, seed: 9 }, { client: c });
  assert.equal(c.httpRequests, 0);
  assert.equal(
    readFileSync(join(a, 'data.jsonl'), 'utf8'),
    readFileSync(join(b, 'data.jsonl'), 'utf8'),
  );
});

test('faults (429, 500, hang, truncated JSON) do not change the result', {
  skip: noShared,
}, async () => {
  const clean = await serve(fakeLlm);
  let n = 0;
  const flaky = await serve((r) => {
    n++;
    if (n % 7 === 1) return { status: 429, headers: { 'retry-after': '0' }, raw: 'rate limited' };
    if (n % 7 === 3) return { status: 500, raw: 'oops' };
    if (n % 11 === 5) return { hang: true };
    if (n % 13 === 6) return { ...fakeLlm(r), truncate: true };
    return fakeLlm(r);
  });
  const a = tmp('si-clean');
  const b = tmp('si-flaky');
  await runSelfInstruct(
    { seed_tasks: seedTasks, out_dir: a, target: 20, seed: 5 },
    { client: client(clean.url) },
  );
  const flakyClient = client(flaky.url, { timeout_ms: 400 });
  await runSelfInstruct(
    { seed_tasks: seedTasks, out_dir: b, target: 20, seed: 5 },
    { client: flakyClient },
  );
  assert.ok(flakyClient.usage().retries > 5);
  assert.equal(
    readFileSync(join(b, 'data.jsonl'), 'utf8'),
    readFileSync(join(a, 'data.jsonl'), 'utf8'),
  );
});

test('Alpaca-style generation end to end', { skip: noShared }, async () => {
  const s = await serve(fakeLlm);
  const out = tmp('alpaca');
  const r = await runAlpaca(
    { seed_tasks: seedTasks, out_dir: out, target: 30, seed: 1 },
    { client: client(s.url) },
  );
  assert.equal(r.records, 30);
  assert.ok((r.rejected.blacklisted ?? 0) > 0);
  const recs = lines(join(out, 'data.jsonl')) as {
    instruction: string;
    input: string;
    output: string;
  }[];
  assert.equal(recs.length, 30);
  assert.ok(recs.some((x) => x.input === '') && recs.some((x) => x.input !== ''));
  const p = s.requests[0]!.body.prompt as string;
  assert.equal(
    (p.match(/^\d\. Instruction:/gm) ?? []).length,
    4,
    '3 seed tasks plus the open slot',
  );
});

function runCli(args: string[]): { child: ReturnType<typeof spawn>; done: Promise<number | null> } {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'instructkit.js'), ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => {
    err += d;
  });
  const done = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      if (code !== 0 && code !== null) process.stderr.write(err);
      resolve(code);
    }),
  );
  return { child, done };
}

test('kill -9 at random points, then re-run: no duplicates, nothing lost', {
  skip: noShared,
}, async () => {
  const s = await serve(async (r) => {
    await new Promise((res) => setTimeout(res, 15));
    return fakeLlm(r);
  });
  const ref = tmp('si-ref');
  await runSelfInstruct(
    { seed_tasks: seedTasks, out_dir: ref, target: 60, seed: 11 },
    { client: client(s.url) },
  );
  const out = tmp('si-kill');
  const args = [
    'synth',
    'self-instruct',
    '--seed-tasks',
    seedTasks,
    '--endpoint',
    s.url,
    '--model',
    'fake',
    '--target',
    '60',
    '--seed',
    '11',
    '--out',
    out,
    '--no-cache',
    '-q',
  ];
  const logPath = join(out, 'instructions.jsonl');
  const countLines = () =>
    existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n').filter(Boolean).length : 0;
  for (const stopAt of [2, 7, 13]) {
    const { child, done } = runCli(args);
    while (countLines() < stopAt && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await done;
  }
  // Kill once more during the instance stage.
  {
    const { child, done } = runCli(args);
    const inst = join(out, 'instances.jsonl');
    while (
      !(existsSync(inst) && readFileSync(inst, 'utf8').split('\n').length > 5) &&
      child.exitCode === null
    )
      await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await done;
  }
  const { done } = runCli(args);
  assert.equal(await done, 0);
  const entries = lines(logPath) as {
    round: number;
    idx: number;
    candidates: { instruction: string; kept: boolean }[];
  }[];
  const keys = entries.map((e) => `${e.round}/${e.idx}`);
  assert.equal(new Set(keys).size, keys.length, 'no request processed twice');
  const kept = entries.flatMap((e) => e.candidates.filter((c) => c.kept).map((c) => c.instruction));
  assert.equal(new Set(kept).size, kept.length, 'no duplicate instruction');
  assert.equal(
    readFileSync(join(out, 'data.jsonl'), 'utf8'),
    readFileSync(join(ref, 'data.jsonl'), 'utf8'),
  );
});
