// The fuzz loop and its supervisor. The loop runs in a worker thread: for each target it runs
// the seeds, then mutants of a corpus that grows by outcome novelty (an input whose outcome —
// accepted, or the class and wording of its typed error — was not seen yet joins the corpus,
// AFL's idea with outcomes standing in for edges: no coverage-instrumented fuzzer for Node
// installs here). Before each input the worker copies it into shared memory and stamps the
// time, so the supervisor can name the input that hangs (kill and restart the worker) or runs
// the worker out of memory (its heap is capped by resourceLimits).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parentPort, Worker, workerData } from 'node:worker_threads';
import { hash32, Mutator } from './mutate.ts';
import { ServerCrash, serveTarget } from './serve-target.ts';
import { errorSignature, isTypedError, swallowed, TARGETS, type Target } from './targets.ts';

export const ALL_TARGETS: readonly Target[] = [serveTarget, ...TARGETS];
export const TARGET_NAMES = ALL_TARGETS.map((t) => t.name);

const MAX_SHARED_INPUT = 4 << 20;

export interface Job {
  target: string;
  seed: number;
  quota: number;
  /** Epoch ms after which no new input starts. */
  deadline: number;
  slowMs: number;
}

export interface Finding {
  target: string;
  kind: 'crash' | 'slow' | 'hang' | 'oom';
  /** Error class and message (or the time for 'slow'). */
  error: string;
  stack?: string;
  input: Uint8Array;
  ms: number;
}

type FromFuzzWorker =
  | {
      type: 'progress' | 'done';
      target: string;
      count: number;
      rejected: number;
      crashes: number;
      slowestMs: number;
      corpus: number;
      findings: Finding[];
    }
  | { type: 'setup-failed'; target: string; error: string };

// ------------------------------------------------------------------ worker side

const signature = errorSignature;

function crashSignature(e: unknown): string {
  const frame =
    e instanceof Error ? ((e.stack ?? '').split('\n').find((l) => l.includes(' at ')) ?? '') : '';
  return `${signature(e)}@${frame.trim()}`;
}

let stray: ((e: unknown, what: string) => void) | undefined;

export async function workerMain(): Promise<void> {
  const port = parentPort!;
  const { sab } = workerData as { sab: SharedArrayBuffer };
  const clock = new Float64Array(sab, 0, 2); // [start time of the current input (0 = idle), length]
  const bytes = new Uint8Array(sab, 16);
  const ctx = { dir: mkdtempSync(join(existsShm() ? '/dev/shm' : tmpdir(), 'ik-fuzz-')) };
  // A promise the target left behind that rejects later would kill the worker (and, in real
  // use, the process): record it as a crash of the inputs run just before.
  process.on('unhandledRejection', (e) => stray?.(e, 'unhandled rejection'));
  process.on('uncaughtException', (e) => stray?.(e, 'uncaught exception'));
  port.on('message', async (job: Job) => {
    try {
      await runJob(job, ctx, port, clock, bytes);
    } catch (e) {
      port.postMessage({
        type: 'setup-failed',
        target: job.target,
        error: String((e as Error)?.stack ?? e),
      });
    }
  });
  process.on('exit', () => rmSync(ctx.dir, { recursive: true, force: true }));
}

function existsShm(): boolean {
  try {
    mkdirSync('/dev/shm', { recursive: true });
    return process.platform === 'linux';
  } catch {
    return false;
  }
}

async function runJob(
  job: Job,
  ctx: { dir: string },
  port: NonNullable<typeof parentPort>,
  clock: Float64Array,
  bytes: Uint8Array,
): Promise<void> {
  const target = ALL_TARGETS.find((t) => t.name === job.target);
  if (!target) throw new Error(`no target ${job.target}`);
  const dir = join(ctx.dir, target.name);
  mkdirSync(dir, { recursive: true });
  const tctx = { dir };
  await target.setup?.(tctx);
  const seeds = (await target.seeds(tctx)).filter((s) => s.length <= MAX_SHARED_INPUT);
  if (seeds.length === 0) throw new Error(`target ${target.name} has no seeds`);
  const mut = new Mutator({ seed: `${job.seed}:${target.name}`, dictionary: target.dictionary });
  const corpus = [...seeds];
  const seen = new Set<string>();
  const crashSeen = new Set<string>();
  let count = 0;
  let rejected = 0;
  let crashes = 0;
  let slowestMs = 0;
  let slowSaved = 0;
  let findings: Finding[] = [];
  let lastPost = performance.now();
  const post = (type: 'progress' | 'done') => {
    port.postMessage({
      type,
      target: target.name,
      count,
      rejected,
      crashes,
      slowestMs,
      corpus: corpus.length,
      findings,
    });
    findings = [];
    lastPost = performance.now();
  };
  const recent: Uint8Array[] = [];
  stray = (e, what) => {
    crashes++;
    const sig = `${what}:${crashSignature(e)}`;
    if (crashSeen.has(sig) || crashSeen.size >= 50) return;
    crashSeen.add(sig);
    const err = e as Error;
    // The culprit is one of the last inputs; save them all.
    for (const input of recent)
      findings.push({
        target: target.name,
        kind: 'crash',
        error: `${what} (one of the last ${recent.length} inputs): ${err?.name}: ${err?.message}`,
        stack: err?.stack,
        input,
        ms: 0,
      });
  };
  while (count < job.quota && Date.now() < job.deadline) {
    const r = mut.rng;
    const input =
      count < seeds.length
        ? seeds[count]!
        : mut.mutate(
            r.choice(corpus),
            target.shape,
            r.float() < 0.2 ? r.choice(corpus) : undefined,
          );
    recent.push(input);
    if (recent.length > 4) recent.shift();
    const n = Math.min(input.length, bytes.length);
    bytes.set(input.subarray(0, n));
    clock[1] = n;
    const t0 = performance.now();
    clock[0] = Date.now();
    let outcome = 'ok';
    swallowed.length = 0;
    try {
      await target.run(input, tctx);
      if (swallowed.length > 0) {
        outcome = swallowed.join('|');
        rejected++;
      }
    } catch (e) {
      if (isTypedError(e)) {
        outcome = signature(e);
        rejected++;
      } else {
        crashes++;
        outcome = `crash:${signature(e)}`;
        const sig = crashSignature(e);
        if (!crashSeen.has(sig) && crashSeen.size < 50) {
          crashSeen.add(sig);
          const err = e as Error;
          findings.push({
            target: target.name,
            kind: 'crash',
            error: e instanceof ServerCrash ? err.message : `${err?.name}: ${err?.message}`,
            stack: err?.stack,
            input: input.slice(),
            ms: performance.now() - t0,
          });
        }
      }
    }
    clock[0] = 0;
    const ms = performance.now() - t0;
    count++;
    if (count > seeds.length && ms > slowestMs) slowestMs = ms;
    // The seeds run first and warm the code up (lazy module state, JIT); they are not timed.
    if (count > seeds.length && ms > job.slowMs && slowSaved < 20) {
      slowSaved++;
      findings.push({
        target: target.name,
        kind: 'slow',
        error: `took ${ms.toFixed(0)} ms (${outcome})`,
        input: input.slice(),
        ms,
      });
    }
    if (!seen.has(outcome)) {
      seen.add(outcome);
      if (input.length <= 256 * 1024) {
        if (corpus.length < 512) corpus.push(input);
        else corpus[seeds.length + r.int(corpus.length - seeds.length)] = input;
      }
    }
    if (count % 500 === 0 && performance.now() - lastPost > 1000) post('progress');
  }
  await target.teardown?.();
  post('done');
}

// ------------------------------------------------------------------ supervisor side

export interface TargetStats {
  target: string;
  inputs: number;
  rejected: number;
  crashes: number;
  hangs: number;
  oom: number;
  slow: number;
  slowestMs: number;
  corpus: number;
  error?: string;
}

export interface FuzzOptions {
  targets: readonly string[];
  seed: number;
  /** Total inputs wanted over all targets. */
  inputs: number;
  /** Total wall-clock budget in seconds. */
  budgetSec: number;
  /** An input slower than this is reported. @default 1000 */
  slowMs?: number;
  /** An input slower than this is killed as a hang. @default 10_000 */
  timeoutMs?: number;
  /** Worker heap cap (MB). @default 768 */
  heapMb?: number;
  /** Folder the findings are written to; none when absent. */
  outDir?: string;
  onProgress?: (s: TargetStats) => void;
}

export interface FuzzResult {
  stats: TargetStats[];
  findings: Finding[];
  peakRssMb: number;
  seconds: number;
}

function spawnFuzzWorker(sab: SharedArrayBuffer, heapMb: number): Worker {
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, {
    eval: true,
    workerData: { sab },
    execArgv: ['--no-warnings'],
    resourceLimits: { maxOldGenerationSizeMb: heapMb },
  });
}

/** Runs the targets one after another in a worker, sharing out the input count and time budget. */
export async function fuzz(o: FuzzOptions): Promise<FuzzResult> {
  const slowMs = o.slowMs ?? 1000;
  const timeoutMs = o.timeoutMs ?? 10_000;
  const heapMb = o.heapMb ?? 768;
  const started = Date.now();
  const end = started + o.budgetSec * 1000;
  const sab = new SharedArrayBuffer(16 + MAX_SHARED_INPUT);
  const clock = new Float64Array(sab, 0, 2);
  const bytes = new Uint8Array(sab, 16);
  const stats: TargetStats[] = [];
  const findings: Finding[] = [];
  let peakRss = process.memoryUsage.rss();
  let worker: Worker | undefined;
  let remainingInputs = o.inputs;

  const save = (f: Finding) => {
    findings.push(f);
    if (!o.outDir) return;
    const d = join(o.outDir, f.target);
    mkdirSync(d, { recursive: true });
    const name = `${f.kind}-${hash32(Buffer.from(f.input).toString('latin1')).toString(16).padStart(8, '0')}`;
    writeFileSync(join(d, `${name}.bin`), f.input);
    writeFileSync(
      join(d, `${name}.txt`),
      `${f.kind} after ${f.ms.toFixed(0)} ms\n${f.error}\n${f.stack ?? ''}\n`,
    );
  };

  for (let ti = 0; ti < o.targets.length; ti++) {
    const name = o.targets[ti]!;
    const left = o.targets.length - ti;
    const quota = Math.ceil(remainingInputs / left);
    const deadline = Date.now() + Math.max(0, end - Date.now()) / left;
    const st: TargetStats = {
      target: name,
      inputs: 0,
      rejected: 0,
      crashes: 0,
      hangs: 0,
      oom: 0,
      slow: 0,
      slowestMs: 0,
      corpus: 0,
    };
    stats.push(st);
    // Counts of earlier workers of this target that were killed (hang / out of memory).
    let base = { inputs: 0, rejected: 0, crashes: 0 };
    let restarts = 0;
    for (;;) {
      // A killed worker leaves its last stamp behind; clear it before the next one starts.
      clock[0] = 0;
      if (!worker) worker = spawnFuzzWorker(sab, heapMb);
      const w = worker;
      const b = base;
      const outcome = await new Promise<'done' | 'hang' | 'oom' | 'failed'>((resolve) => {
        const onMsg = (m: FromFuzzWorker) => {
          if (m.type === 'setup-failed') {
            st.error = m.error;
            cleanup();
            resolve('failed');
            return;
          }
          st.inputs = b.inputs + m.count;
          st.rejected = b.rejected + m.rejected;
          st.crashes = b.crashes + m.crashes;
          st.slowestMs = Math.max(st.slowestMs, m.slowestMs);
          st.corpus = m.corpus;
          for (const f of m.findings) {
            if (f.kind === 'slow') st.slow++;
            save(f);
          }
          o.onProgress?.(st);
          if (m.type === 'done') {
            cleanup();
            resolve('done');
          }
        };
        const kill = (kind: 'hang' | 'oom', error: string) => {
          const n = Math.min(clock[1]!, bytes.length);
          const input = bytes.slice(0, n);
          const ms = clock[0]! > 0 ? Date.now() - clock[0]! : 0;
          save({ target: name, kind, error, input, ms });
          cleanup();
          resolve(kind);
        };
        const watch = setInterval(() => {
          peakRss = Math.max(peakRss, process.memoryUsage.rss());
          const t = clock[0]!;
          if (t > 0 && Date.now() - t > timeoutMs) kill('hang', `no result after ${timeoutMs} ms`);
        }, 100);
        const onError = (e: Error) => kill('oom', `worker died: ${e.message}`);
        const onExit = (code: number) => kill('oom', `worker exited with code ${code}`);
        const cleanup = () => {
          clearInterval(watch);
          w.off('message', onMsg);
          w.off('error', onError);
          w.off('exit', onExit);
        };
        w.on('message', onMsg);
        w.on('error', onError);
        w.on('exit', onExit);
        w.postMessage({
          target: name,
          seed: o.seed + restarts * 7919,
          quota: quota - b.inputs,
          deadline,
          slowMs,
        } satisfies Job);
      });
      if (outcome === 'done' || outcome === 'failed') break;
      // The worker is dead or stuck: count the input it died on, restart, carry on.
      void worker.terminate();
      worker = undefined;
      st.inputs += 1;
      st.slowestMs = Math.max(st.slowestMs, timeoutMs);
      base = { inputs: st.inputs, rejected: st.rejected, crashes: st.crashes };
      if (outcome === 'hang') st.hangs++;
      else st.oom++;
      restarts++;
      if (st.inputs >= quota || Date.now() >= deadline || restarts > 50) break;
    }
    remainingInputs = Math.max(0, remainingInputs - st.inputs);
  }
  if (worker) await worker.terminate();
  peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024);
  return { stats, findings, peakRssMb: peakRss / 2 ** 20, seconds: (Date.now() - started) / 1000 };
}
