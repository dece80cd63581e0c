// Fuzzes the project's parsers and the server's request handling (targets in bench/fuzz/):
// safetensors files and headers, GGUF, JSONL / JSON-array / Parquet records, YAML configs
// through the zod schemas, eval task YAML, PromptSource / FLAN / Super-NI templates, chat
// templates, tokenizer.json and server request bodies. Any thrown error that is not one of the
// project's typed errors (src/util/errors.ts) is a crash; a 5xx answer from the server is a
// crash; an input slower than --slow-ms is reported, one slower than --timeout-ms is killed as
// a hang. Findings (input .bin + error .txt) go to --out for triage.
// Usage: npm run bench -- fuzz [--budget 1800] [--inputs 1000000] [--seed 1] [--targets a,b] [--out runs/fuzz] [--slow-ms 1000] [--timeout-ms 10000] [--heap-mb 768]
import { parseArgs } from 'node:util';
import { fuzz, TARGET_NAMES } from './fuzz/runner.ts';

const { values } = parseArgs({
  options: {
    budget: { type: 'string', default: '1800' },
    inputs: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: '1' },
    targets: { type: 'string', default: TARGET_NAMES.join(',') },
    out: { type: 'string', default: 'runs/fuzz' },
    'slow-ms': { type: 'string', default: '1000' },
    'timeout-ms': { type: 'string', default: '10000' },
    'heap-mb': { type: 'string', default: '768' },
  },
});

const num = (name: string, v: string): number => {
  const x = Number(v);
  if (!Number.isFinite(x) || x < 0) {
    process.stderr.write(`--${name} must be a non-negative number, got '${v}'\n`);
    process.exit(2);
  }
  return x;
};
const targets = values.targets.split(',').filter((t) => t !== '');
for (const t of targets)
  if (!TARGET_NAMES.includes(t)) {
    process.stderr.write(`unknown target '${t}'; targets: ${TARGET_NAMES.join(', ')}\n`);
    process.exit(2);
  }

const budgetSec = num('budget', values.budget);
process.stderr.write(
  `fuzzing ${targets.length} targets, ${values.inputs} inputs within ${budgetSec} s, seed ${values.seed}; findings in ${values.out}/\n`,
);
const r = await fuzz({
  targets,
  seed: num('seed', values.seed),
  inputs: num('inputs', values.inputs),
  budgetSec,
  slowMs: num('slow-ms', values['slow-ms']),
  timeoutMs: num('timeout-ms', values['timeout-ms']),
  heapMb: num('heap-mb', values['heap-mb']),
  outDir: values.out,
});

const pad = (s: string | number, n: number) => String(s).padStart(n);
console.log(
  `${'target'.padEnd(20)}${pad('inputs', 10)}${pad('rejected', 10)}${pad('crashes', 9)}${pad('hangs', 7)}${pad('oom', 5)}${pad('slow', 6)}${pad('slowest ms', 12)}${pad('corpus', 8)}`,
);
for (const s of r.stats)
  console.log(
    `${s.target.padEnd(20)}${pad(s.inputs, 10)}${pad(s.rejected, 10)}${pad(s.crashes, 9)}${pad(s.hangs, 7)}${pad(s.oom, 5)}${pad(s.slow, 6)}${pad(s.slowestMs.toFixed(1), 12)}${pad(s.corpus, 8)}${s.error ? `  SETUP FAILED: ${s.error.split('\n')[0]}` : ''}`,
  );
const sum = (k: 'inputs' | 'crashes' | 'hangs' | 'oom' | 'slow') =>
  r.stats.reduce((a, s) => a + s[k], 0);
const slowest = r.stats.reduce(
  (a, s) => (s.slowestMs > a.ms ? { ms: s.slowestMs, target: s.target } : a),
  {
    ms: 0,
    target: '',
  },
);
for (const f of r.findings.filter((f) => f.kind !== 'slow').slice(0, 20))
  console.log(`${f.kind} in ${f.target}: ${f.error.split('\n')[0]}`);
console.log(
  `${sum('inputs')} inputs in ${r.seconds.toFixed(0)} s (${(sum('inputs') / r.seconds).toFixed(0)}/s); ${sum('crashes')} crashes, ${sum('hangs')} hangs, ${sum('oom')} out of memory, ${sum('slow')} inputs over ${values['slow-ms']} ms; slowest ${slowest.ms.toFixed(0)} ms (${slowest.target}); peak RSS ${r.peakRssMb.toFixed(0)} MB`,
);
console.log(
  JSON.stringify({
    bench: 'fuzz',
    seed: num('seed', values.seed),
    budget_s: budgetSec,
    seconds: Math.round(r.seconds),
    inputs: sum('inputs'),
    crashes: sum('crashes'),
    hangs: sum('hangs'),
    oom: sum('oom'),
    slow_inputs: sum('slow'),
    slowest_ms: Math.round(slowest.ms),
    slowest_target: slowest.target,
    peak_rss_mb: Math.round(r.peakRssMb),
    targets: Object.fromEntries(
      r.stats.map((s) => [
        s.target,
        {
          inputs: s.inputs,
          crashes: s.crashes,
          hangs: s.hangs,
          oom: s.oom,
          slowest_ms: Math.round(s.slowestMs),
          ...(s.error ? { setup_error: s.error.split('\n')[0] } : {}),
        },
      ]),
    ),
  }),
);
process.exit(
  sum('crashes') + sum('hangs') + sum('oom') > 0 || r.stats.some((s) => s.error) ? 1 : 0,
);
