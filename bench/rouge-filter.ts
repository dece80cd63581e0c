// bench/rouge-filter: the Self-Instruct near-duplicate filter (reject when ROUGE-L F > 0.7 against
// the pool) over 10k generated candidates, starting from the 175 seed instructions. Measures the
// fast RougeLIndex and a brute-force filter that re-tokenises and runs a full LCS per pair, as
// rouge_score does, in the same run. The brute force runs on a prefix of the candidates and is
// extrapolated per pair comparison; decisions on that prefix must be identical.
// Usage: npx tsx bench/rouge-filter.ts [candidates=10000] [bruteForcePrefix=400]
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RougeLIndex, rougeL } from '../src/data/rouge.ts';
import { Rng } from '../src/util/rng.ts';

const N = Number(process.argv[2] ?? 10_000);
const PREFIX = Math.min(N, Number(process.argv[3] ?? 400));
const THRESHOLD = 0.7;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const seeds = readFileSync(
  join(root, '..', 'shared', 'data', 'self-instruct', 'seed_tasks.jsonl'),
  'utf8',
)
  .split('\n')
  .filter(Boolean)
  .map((l) => (JSON.parse(l) as { instruction: string }).instruction);

// Instruction-like candidates. Fresh ones take a seed instruction's wording and replace about
// 40% of its words with words from the seed tasks' vocabulary (instructions and instances, a few
// thousand words, like the varied wording of LLM-written instructions); a third are light
// perturbations of earlier candidates or seeds (near-duplicates the filter must catch).
const rng = new Rng(2024);
const seedTexts = readFileSync(
  join(root, '..', 'shared', 'data', 'self-instruct', 'seed_tasks.jsonl'),
  'utf8',
)
  .split('\n')
  .filter(Boolean)
  .map(
    (l) => JSON.parse(l) as { instruction: string; instances: { input: string; output: string }[] },
  );
const vocab = [
  ...new Set(
    seedTexts
      .flatMap((t) => [t.instruction, ...t.instances.flatMap((x) => [x.input, x.output])])
      .join(' ')
      .split(/\s+/)
      .filter((w) => /^[A-Za-z][a-z]+$/.test(w)),
  ),
];
function perturb(s: string): string {
  const w = s.split(' ');
  for (let k = 1 + rng.int(2); k > 0; k--) {
    const op = rng.int(4);
    const i = rng.int(w.length);
    if (op === 0 && w.length > 4) w.splice(i, 1);
    else if (op === 1) w.splice(i, 0, rng.choice(vocab));
    else if (op === 2 && i + 1 < w.length) [w[i], w[i + 1]] = [w[i + 1]!, w[i]!];
    else w[i] = rng.choice(vocab);
  }
  return w.join(' ');
}
function fresh(): string {
  return rng
    .choice(seeds)
    .split(' ')
    .map((w) => (rng.float() < 0.4 ? rng.choice(vocab) : w))
    .join(' ');
}
const candidates: string[] = [];
for (let k = 0; k < N; k++) {
  const roll = rng.float();
  if (roll < 0.25 && candidates.length > 0) candidates.push(perturb(rng.choice(candidates)));
  else if (roll < 0.33) candidates.push(perturb(rng.choice(seeds)));
  else candidates.push(fresh());
}

// Fast filter over all candidates.
const idx = new RougeLIndex({ threshold: THRESHOLD });
for (const s of seeds) idx.add(s);
const fastDecisions: boolean[] = [];
let pairsTotal = 0;
let pairsPrefix = 0;
const t0 = performance.now();
for (let k = 0; k < N; k++) {
  const c = candidates[k]!;
  pairsTotal += idx.size;
  if (k < PREFIX) pairsPrefix += idx.size;
  const reject = idx.exceeds(c);
  fastDecisions.push(!reject);
  if (!reject) idx.add(c);
}
const fastMs = performance.now() - t0;

// Brute force on the prefix: every pair scored from raw strings, like the original scripts.
const pool = [...seeds];
let identical = true;
const t1 = performance.now();
for (let k = 0; k < PREFIX; k++) {
  const c = candidates[k]!;
  let max = 0;
  for (const p of pool) max = Math.max(max, rougeL(c, p).fmeasure);
  const keep = max <= THRESHOLD;
  if (keep !== fastDecisions[k]) identical = false;
  if (keep) pool.push(c);
}
const bruteMsPrefix = performance.now() - t1;
const bruteMsPerPair = bruteMsPrefix / pairsPrefix;
const bruteMsEstimated = bruteMsPerPair * pairsTotal;
const kept = fastDecisions.filter(Boolean).length;

console.log(
  `candidates ${N}, kept ${kept}, final pool ${idx.size}, pair comparisons ${pairsTotal}`,
);
console.log(`fast: ${fastMs.toFixed(0)} ms (${(N / (fastMs / 1000)).toFixed(0)} candidates/s)`);
console.log(
  `brute force: ${bruteMsPrefix.toFixed(0)} ms for the first ${PREFIX} candidates (${pairsPrefix} pairs, ${(bruteMsPerPair * 1000).toFixed(2)} µs/pair); estimated ${(bruteMsEstimated / 1000).toFixed(0)} s for all`,
);
console.log(
  JSON.stringify({
    bench: 'rouge-filter',
    candidates: N,
    kept,
    pairs: pairsTotal,
    fast_ms: Math.round(fastMs),
    candidates_per_s: Math.round(N / (fastMs / 1000)),
    brute_force_us_per_pair: Number((bruteMsPerPair * 1000).toFixed(3)),
    brute_force_ms_estimated: Math.round(bruteMsEstimated),
    brute_force_measured_prefix: PREFIX,
    speedup: Math.round(bruteMsEstimated / fastMs),
    // Not measured here: rouge_score (Python) took about 46 µs per score() call on a machine
    // like this one (shared/data/rouge/README.md); the same pair count at that rate.
    speedup_vs_rouge_score_reference: Math.round((46e-3 * pairsTotal) / fastMs),
    identical,
  }),
);
