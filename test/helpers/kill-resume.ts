// The kill -9 resume check every trainer's CLI gets: run a config to the end (the reference),
// run it again and SIGKILL it once a checkpoint is on disk, then resume. The trainer's own test
// compares what it must (weights, metrics) between the resumed and the uninterrupted run.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './shared.ts';

interface CliRun {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  err: () => string;
}

/** `instructkit ...args` in a child process, its stderr collected. */
export function spawnCli(args: string[], cwd: string): CliRun {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'instructkit.js'), ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => {
    err += d;
  });
  return {
    child,
    done: new Promise((r) => child.on('exit', (code, signal) => r({ code, signal }))),
    err: () => err,
  };
}

/** metrics.jsonl as objects. */
export function readMetrics(file: string): Record<string, number>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, number>);
}

/**
 * Runs `command --config dir/ref.yaml` to the end, then `command --config dir/run.yaml` until
 * `checkpoint-<checkpoint>` is complete in `dir/run`, and kills it with SIGKILL. Returns the run
 * directory and the last complete checkpoint's step (checked to be before `totalSteps`).
 */
export async function runAndKill(o: {
  command: string;
  dir: string;
  cwd: string;
  checkpoint: number;
  totalSteps: number;
}): Promise<{ run: string; kept: number }> {
  const ref = spawnCli([o.command, '--config', join(o.dir, 'ref.yaml')], o.cwd);
  assert.deepEqual(await ref.done, { code: 0, signal: null }, ref.err());
  const run = join(o.dir, 'run');
  const first = spawnCli([o.command, '--config', join(o.dir, 'run.yaml')], o.cwd);
  while (
    !existsSync(join(run, `checkpoint-${o.checkpoint}`, 'trainer_state.json')) &&
    first.child.exitCode === null
  )
    await new Promise((r) => setTimeout(r, 5));
  assert.equal(first.child.exitCode, null, `the run ended before the kill: ${first.err()}`);
  assert.ok(first.child.kill('SIGKILL'));
  assert.deepEqual(await first.done, { code: null, signal: 'SIGKILL' }, 'killed by SIGKILL');
  assert.ok(!existsSync(join(run, 'model.safetensors')), 'no final weights after the kill');
  const kept = Math.max(
    ...readdirSync(run)
      .map((n) => /^checkpoint-(\d+)$/.exec(n))
      .filter((m) => m !== null && existsSync(join(run, m[0], 'trainer_state.json')))
      .map((m) => Number(m![1])),
  );
  assert.ok(kept >= o.checkpoint && kept < o.totalSteps, `last complete checkpoint ${kept}`);
  return { run, kept };
}

/** `command --config dir/run.yaml --resume-from-checkpoint`, which must end cleanly. */
export async function resumeRun(o: { command: string; dir: string; cwd: string }): Promise<void> {
  const second = spawnCli(
    [o.command, '--config', join(o.dir, 'run.yaml'), '--resume-from-checkpoint'],
    o.cwd,
  );
  assert.deepEqual(await second.done, { code: 0, signal: null }, second.err());
}
