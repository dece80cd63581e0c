// bench/rouge-filter: the Self-Instruct near-duplicate filter (reject a candidate whose ROUGE-L F
// against any pool entry is > 0.7; kept candidates join the pool) over 10k generated candidates,
// starting from the 175 seed instructions. Times RougeLIndex.exceeds, in the same run, against:
// - the headline brute force, as Alpaca's generate_instruction.py does it: every string is
//   tokenised once (pool entries when they join, each candidate when it arrives) and every
//   (candidate, pool entry) pair is scored with rouge_score's _score_lcs (LCS table, no early
//   exit), the maximum deciding;
// - the brute force of the Self-Instruct script (rouge_score's scorer.score per pair, which
//   re-tokenises both strings every time), the figure this bench quoted first before; kept beside.
// Both brute forces are timed on every `--brute-every`-th candidate (default 10), each against
// the pool as it stood at that point, and extrapolated per pair comparison to all candidates
// (`--brute-every 1` times them on all of them); the tokenise-once one adds the measured time of
// tokenising every string once. Every one of the fast filter's decisions is checked
// against an independent exact replay (tokenise once, plain LCS table per pair), so `identical`
// covers all candidates. Both filters are warmed up on a differently seeded set first, and the
// fast filter's time is the median of 5 runs.
// Usage: npx tsx bench/rouge-filter.ts [candidates=10000] [--brute-every N] [--seed S]
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type BestMatch,
  bruteForceBest,
  fmeasureFromLcs,
  lcsLength,
  RougeLIndex,
  rougeTokenize,
} from '../src/data/rouge.ts';
import { Rng } from '../src/util/rng.ts';

const argv = process.argv.slice(2);
const flag = (name: string, dflt: number) =>
  argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : dflt;
const N = Number(argv.find((a, i) => /^\d+$/.test(a) && !argv[i - 1]?.startsWith('--')) ?? 10_000);
const BRUTE_EVERY = Math.max(1, flag('--brute-every', 10));
const SEED = flag('--seed', 2024);
const THRESHOLD = 0.7;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const seedPath = join(root, '..', 'shared', 'data', 'self-instruct', 'seed_tasks.jsonl');
if (!existsSync(seedPath)) {
  process.stderr.write(
    `bench/rouge-filter needs the 175 Self-Instruct seed tasks from ../shared/data, the reference data kept beside the repository (see the README): ${seedPath} is missing\n`,
  );
  process.exit(2);
}
const seedTasks = readFileSync(seedPath, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map(
    (l) => JSON.parse(l) as { instruction: string; instances: { input: string; output: string }[] },
  );
const seeds = seedTasks.map((t) => t.instruction);
/** Words of the seed tasks (instructions and instances): a few thousand, as varied as LLM text. */
const vocab = [
  ...new Set(
    seedTasks
      .flatMap((t) => [t.instruction, ...t.instances.flatMap((x) => [x.input, x.output])])
      .join(' ')
      .split(/\s+/)
      .filter((w) => /^[A-Za-z][a-z]+$/.test(w)),
  ),
];

const VERBS =
  'Write,Generate,Create,Compose,Draft,List,Describe,Explain,Summarize,Suggest,Give,Outline,Classify,Rewrite,Translate,Identify,Compare,Design,Plan,Recommend'.split(
    ',',
  );
const OBJECTS =
  'a short poem,a haiku,a product description,a tweet,a cover letter,a list of tips,a recipe,a short story,an email,a slogan,three interview questions,a workout plan,a travel itinerary,a movie review,a lesson plan,five fun facts,a riddle,a dialogue,a news headline,a limerick'.split(
    ',',
  );
const TOPICS =
  'time management,climate change,a rainy day,machine learning,the ocean,friendship,a job interview,healthy breakfast,public speaking,a birthday party,remote work,space travel,ancient Rome,personal finance,learning a language,gardening,a lost cat,renewable energy,the first day of school,video games,coffee,a mountain hike,online privacy,volunteering'.split(
    ',',
  );
const STYLES =
  ',, in the style of a pirate, for a five-year-old, in under 50 words, using formal language, with a humorous tone, for a busy professional, as a bulleted list, in the second person'.split(
    ',',
  );

/** Instruction-like candidates with near-duplicates, all from one seeded stream. */
function makeCandidates(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  const perturb = (s: string): string => {
    const w = s.split(' ');
    for (let k = 1 + rng.int(2); k > 0; k--) {
      const op = rng.int(5);
      const i = rng.int(w.length);
      if (op === 0 && w.length > 4) w.splice(i, 1);
      else if (op === 1) w.splice(i, 0, rng.choice(vocab));
      else if (op === 2 && i + 1 < w.length) [w[i], w[i + 1]] = [w[i + 1]!, w[i]!];
      else if (op === 3) w[i] = w[i]!.toUpperCase();
      else w[i] = rng.choice(vocab);
    }
    return w.join(' ');
  };
  const rewrite = () =>
    rng
      .choice(seeds)
      .split(' ')
      .map((w) => (rng.float() < 0.4 ? rng.choice(vocab) : w))
      .join(' ');
  const template = () =>
    `${rng.choice(VERBS)} ${rng.choice(OBJECTS)} about ${rng.choice(TOPICS)}${rng.choice(STYLES)}.`;
  const out: string[] = [];
  for (let k = 0; k < n; k++) {
    const roll = rng.float();
    if (roll < 0.25 && out.length > 0) out.push(perturb(rng.choice(out)));
    else if (roll < 0.35) out.push(perturb(rng.choice(seeds)));
    else if (roll < 0.6) out.push(template());
    else out.push(rewrite());
  }
  return out;
}

/**
 * The fast filter: returns each candidate's decision (true = kept) and the pool size it met.
 * With `best`, it asks RougeLIndex.best (exact max, most similar entry, ties) instead of
 * exceeds, as the synth pipelines do to report the most similar instruction.
 */
function fastFilter(cands: readonly string[], best = false, matches?: BestMatch[]) {
  const idx = new RougeLIndex({ threshold: THRESHOLD });
  for (const s of seeds) idx.add(s);
  const kept = new Array<boolean>(cands.length);
  const poolSize = new Int32Array(cands.length);
  for (let k = 0; k < cands.length; k++) {
    poolSize[k] = idx.size;
    if (best) {
      const m = idx.best(cands[k]!);
      matches?.push(m);
      kept[k] = m.score <= THRESHOLD;
    } else kept[k] = !idx.exceeds(cands[k]!);
    if (kept[k]) idx.add(cands[k]!);
  }
  return { kept, poolSize };
}

/** Median wall time of `runs` calls (a short run is at the mercy of a busy machine). */
function medianMs(runs: number, f: () => void): { median: number; times: number[] } {
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    f();
    times.push(performance.now() - t0);
  }
  return { median: [...times].sort((a, b) => a - b)[runs >> 1]!, times };
}

/** The pool each candidate met, given the decisions before it (seeds, then kept candidates). */
function poolsFrom(cands: readonly string[], kept: readonly boolean[]): string[] {
  return [...seeds, ...cands.filter((_, k) => kept[k])];
}

/** Brute force on the sampled candidates: best matches, pairs scored and milliseconds. */
function bruteSample(cands: readonly string[], kept: readonly boolean[], poolSize: Int32Array) {
  const pool = poolsFrom(cands, kept);
  const matches = new Map<number, BestMatch>();
  let pairs = 0;
  const t = performance.now();
  for (let k = 0; k < cands.length; k += BRUTE_EVERY) {
    matches.set(k, bruteForceBest(cands[k]!, pool.slice(0, poolSize[k]!)));
    pairs += poolSize[k]!;
  }
  return { matches, pairs, ms: performance.now() - t };
}

/**
 * Alpaca's brute force on the sampled candidates: each string tokenised once, then every pair of
 * the sample scored with _score_lcs (LCS table, no early exit). Returns best matches, pairs
 * scored, the milliseconds of those pairs, and the milliseconds of tokenising every string of a
 * full run (seeds and all candidates) once.
 */
function tokeniseOnceSample(
  cands: readonly string[],
  kept: readonly boolean[],
  poolSize: Int32Array,
) {
  const t0 = performance.now();
  const seedTokens = seeds.map((s) => rougeTokenize(s));
  const candTokens = cands.map((c) => rougeTokenize(c));
  const tokeniseMs = performance.now() - t0;
  const pool = [...seedTokens, ...candTokens.filter((_, k) => kept[k])];
  const matches = new Map<number, BestMatch>();
  let pairs = 0;
  const t = performance.now();
  for (let k = 0; k < cands.length; k += BRUTE_EVERY) {
    const q = candTokens[k]!;
    const n = poolSize[k]!;
    let score = 0;
    let index = -1;
    let nAtMax = 0;
    for (let i = 0; i < n; i++) {
      const p = pool[i]!;
      const f = fmeasureFromLcs(lcsLength(q, p), q.length, p.length);
      if (index < 0 || f > score) {
        score = f;
        index = i;
        nAtMax = 1;
      } else if (f === score) nAtMax++;
    }
    matches.set(k, { score, index, nAtMax });
    pairs += n;
  }
  return { matches, pairs, ms: performance.now() - t, tokeniseMs };
}

/** Independent exact replay of every decision: tokenise once, plain LCS table per pair. */
function exactReplay(cands: readonly string[]): boolean[] {
  const ids = new Map<string, number>();
  const intern = (text: string) =>
    Int32Array.from(rougeTokenize(text), (t) => {
      const id = ids.get(t);
      if (id !== undefined) return id;
      ids.set(t, ids.size);
      return ids.size - 1;
    });
  let row = new Int32Array(64);
  /** LCS length by the textbook recurrence, one row at a time. */
  const lcs = (a: Int32Array, b: Int32Array): number => {
    if (row.length <= b.length) row = new Int32Array(b.length * 2);
    row.fill(0, 0, b.length + 1);
    for (let i = 0; i < a.length; i++) {
      let diag = 0;
      for (let j = 1; j <= b.length; j++) {
        const up = row[j]!;
        row[j] = a[i] === b[j - 1] ? diag + 1 : Math.max(up, row[j - 1]!);
        diag = up;
      }
    }
    return row[b.length]!;
  };
  const pool = seeds.map(intern);
  return cands.map((c) => {
    const q = intern(c);
    let keep = true;
    for (const p of pool) {
      if (q.length === 0 || p.length === 0) continue;
      const l = lcs(q, p);
      const prec = l / p.length;
      const rec = l / q.length;
      if (prec + rec > 0 && (2 * prec * rec) / (prec + rec) > THRESHOLD) {
        keep = false;
        break;
      }
    }
    if (keep) pool.push(q);
    return keep;
  });
}

// Warm-up on a differently seeded set (JIT tiers; both filters get the same treatment).
{
  const warm = makeCandidates(3000, SEED + 1);
  const w = fastFilter(warm);
  fastFilter(warm, true);
  bruteSample(warm.slice(0, 200 * BRUTE_EVERY), w.kept, w.poolSize);
  tokeniseOnceSample(warm.slice(0, 200 * BRUTE_EVERY), w.kept, w.poolSize);
}

const candidates = makeCandidates(N, SEED);
// The fast filter takes tens of milliseconds, so one run is at the mercy of a busy machine:
// it runs FAST_RUNS times (a fresh index each time) and the median time counts.
const FAST_RUNS = 5;
const { kept, poolSize } = fastFilter(candidates);
const fast = medianMs(FAST_RUNS, () => fastFilter(candidates));
const fastMs = fast.median;
const fastMatches: BestMatch[] = [];
const viaBest = fastFilter(candidates, true, fastMatches).kept;
const bestRun = medianMs(FAST_RUNS, () => fastFilter(candidates, true));
const pairsTotal = poolSize.reduce((a, b) => a + b, 0);
const nKept = kept.filter(Boolean).length;

const brute = bruteSample(candidates, kept, poolSize);
const once = tokeniseOnceSample(candidates, kept, poolSize);
// On the sampled candidates both brute forces must give the same decision and the same best
// match (score, first index at the max, tie count) as the index.
let bruteAgrees = true;
for (const sample of [brute.matches, once.matches])
  for (const [k, m] of sample) {
    const f = fastMatches[k]!;
    const same = m.score === f.score && m.index === f.index && m.nAtMax === f.nAtMax;
    if (!same || m.score <= THRESHOLD !== kept[k]) bruteAgrees = false;
  }
const t2 = performance.now();
const replay = exactReplay(candidates);
const replayMs = performance.now() - t2;
const replayAgrees = replay.every((keep, k) => keep === kept[k] && keep === viaBest[k]);

// Headline: Alpaca's tokenise-once brute force. Beside it: the re-tokenising one.
const onceUsPerPair = (once.ms * 1000) / once.pairs;
const onceMsAll = once.tokeniseMs + (onceUsPerPair * pairsTotal) / 1000;
const speedup = onceMsAll / fastMs;
const bruteUsPerPair = (brute.ms * 1000) / brute.pairs;
const bruteMsAll = (bruteUsPerPair * pairsTotal) / 1000;
const speedupRetokenising = bruteMsAll / fastMs;
const measured = BRUTE_EVERY === 1 ? 'measured' : 'extrapolated';
console.log(`candidates ${N}, kept ${nKept}, final pool ${seeds.length + nKept}`);
console.log(`pair comparisons a brute-force filter makes: ${pairsTotal}`);
console.log(
  `fast filter (RougeLIndex.exceeds): ${fastMs.toFixed(1)} ms (median of ${FAST_RUNS} runs: ${fast.times.map((t) => t.toFixed(1)).join(', ')}), ${(N / (fastMs / 1000)).toFixed(0)} candidates/s, ${((fastMs * 1000) / N).toFixed(2)} µs/candidate`,
);
console.log(
  `fast filter via RougeLIndex.best (exact max and most similar entry): ${bestRun.median.toFixed(1)} ms, ${(N / (bestRun.median / 1000)).toFixed(0)} candidates/s`,
);
const sampled = `timed on ${brute.matches.size} of ${N} candidates (${BRUTE_EVERY === 1 ? 'all' : `every ${BRUTE_EVERY}th`}, each against the pool of its time)`;
console.log(
  `brute force as Alpaca's script (tokenise each string once, LCS table per pair): ${sampled}, ${once.pairs} pairs in ${once.ms.toFixed(0)} ms = ${onceUsPerPair.toFixed(3)} µs/pair, plus ${once.tokeniseMs.toFixed(0)} ms tokenising every string once; ${measured} for all candidates: ${(onceMsAll / 1000).toFixed(1)} s`,
);
console.log(
  `brute force as the Self-Instruct script (re-tokenise both + LCS table per pair): ${sampled}, ${brute.pairs} pairs in ${brute.ms.toFixed(0)} ms = ${bruteUsPerPair.toFixed(3)} µs/pair; ${measured} for all candidates: ${(bruteMsAll / 1000).toFixed(1)} s`,
);
console.log(
  `exact replay (tokenise once, LCS table per pair, all ${N} candidates): ${replayMs.toFixed(0)} ms, decisions of exceeds and best ${replayAgrees ? 'identical' : 'DIFFERENT'}; brute-force sample (decisions and best matches) ${bruteAgrees ? 'identical' : 'DIFFERENT'}`,
);
console.log(
  `speedup over the tokenise-once brute force (Alpaca): ${speedup.toFixed(0)}x (exceeds), ${(onceMsAll / bestRun.median).toFixed(0)}x (best); over the re-tokenising one (Self-Instruct): ${speedupRetokenising.toFixed(0)}x (exceeds)`,
);
console.log(
  JSON.stringify({
    bench: 'rouge-filter',
    candidates: N,
    candidates_per_s: Math.round(N / (fastMs / 1000)),
    speedup: Math.round(speedup),
    brute_force: 'tokenise once, LCS table per pair, no early exit (Alpaca)',
    identical: bruteAgrees && replayAgrees,
    kept: nKept,
    pairs: pairsTotal,
    fast_ms: Number(fastMs.toFixed(3)),
    brute_force_us_per_pair: Number(onceUsPerPair.toFixed(3)),
    brute_force_tokenise_ms: Number(once.tokeniseMs.toFixed(3)),
    brute_force_ms: Number(onceMsAll.toFixed(3)),
    brute_force_timed_candidates: once.matches.size,
    brute_force_extrapolated: BRUTE_EVERY > 1,
    speedup_vs_retokenising: Math.round(speedupRetokenising),
    retokenising_brute_force_us_per_pair: Number(bruteUsPerPair.toFixed(3)),
    retokenising_brute_force_ms: Math.round(bruteMsAll),
    speedup_vs_exact_replay: Math.round(replayMs / fastMs),
    best_candidates_per_s: Math.round(N / (bestRun.median / 1000)),
    best_speedup: Math.round(onceMsAll / bestRun.median),
  }),
);
