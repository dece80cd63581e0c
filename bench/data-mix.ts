// Streams a large FLAN-style mixture (default 10M examples over 30 generated tasks with skewed
// sizes) to a null sink and reports examples/s, peak RSS, and the mixture's throughput as a
// ratio of the raw generators' throughput measured in the same run.
// Usage: npx tsx bench/data-mix.ts [examples] [--strategy proportional|temperature]
import { type MixtureSource, mix } from '../src/data/mixture.ts';
import type { TaskExample } from '../src/data/records.ts';

const argv = process.argv.slice(2);
const examples = Number(argv.find((a) => /^\d+$/.test(a)) ?? 10_000_000);
const strategy = argv.includes('--strategy')
  ? (argv[argv.indexOf('--strategy') + 1] as 'proportional' | 'temperature')
  : 'proportional';
const TASKS = 30;
const CAP = 200_000;

const words = [
  'apple',
  'river',
  'stone',
  'cloud',
  'maple',
  'ember',
  'frost',
  'lumen',
  'quill',
  'delta',
];

/** Task i has a Zipf-like size: 2M / (i+1)^1.3, so a few tasks are huge and most are small. */
function sizeOf(i: number): number {
  return Math.max(500, Math.floor(2_000_000 / (i + 1) ** 1.3));
}

/** Generates task i's examples on the fly (each pass is a fresh generator; nothing is stored). */
function* generate(task: number, size: number, seed: number): Generator<TaskExample> {
  const name = `task${task}`;
  let x = seed >>> 0 || 1;
  for (let j = 0; j < size; j++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const a = x % 1000;
    const b = (x >>> 10) % 1000;
    const w = words[(x >>> 20) % words.length]!;
    switch (task % 3) {
      case 0:
        yield { task: name, input: `Add ${a} and ${b}.`, target: String(a + b) };
        break;
      case 1:
        yield { task: name, input: `Spell "${w}" backwards.`, target: [...w].reverse().join('') };
        break;
      default:
        yield { task: name, input: `How many letters are in "${w}"?`, target: String(w.length) };
    }
  }
}

const sources: MixtureSource<TaskExample>[] = Array.from({ length: TASKS }, (_, i) => ({
  name: `task${i}`,
  size: sizeOf(i),
  open: ({ seed }) => generate(i, sizeOf(i), seed),
}));

function rssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

const startRss = process.memoryUsage().rss / 2 ** 20;

// Raw generator throughput: drain the same generators round-robin, no mixing.
const rawTarget = Math.min(examples, 3_000_000);
let sink = 0;
let t0 = performance.now();
{
  let n = 0;
  const its = sources.map((_, i) => generate(i, sizeOf(i), i + 1));
  while (n < rawTarget) {
    for (let i = 0; i < its.length && n < rawTarget; i++) {
      let r = its[i]!.next();
      if (r.done) {
        its[i] = generate(i, sizeOf(i), i + 7);
        r = its[i]!.next();
      }
      sink += (r.value as TaskExample).target.length;
      n++;
    }
  }
}
const rawSeconds = (performance.now() - t0) / 1000;
const rawPerS = rawTarget / rawSeconds;

t0 = performance.now();
const m = mix(sources, {
  strategy,
  cap: CAP,
  temperature: 2,
  total: examples,
  onExhausted: 'repeat',
  seed: 42,
});
let last = t0;
for await (const ex of m) {
  sink += ex.target.length;
  if ((m.summary.emitted & 0xfffff) === 0) {
    const now = performance.now();
    if (now - last > 5000) {
      process.stderr.write(
        `  ${m.summary.emitted.toLocaleString()} examples, rss ${rssMb().toFixed(0)} MB\n`,
      );
      last = now;
    }
  }
}
const mixSeconds = (performance.now() - t0) / 1000;
const perS = examples / mixSeconds;
const peak = rssMb();

const top = [...m.summary.sources].sort((a, b) => b.emitted - a.emitted).slice(0, 3);
console.log(
  `raw generators: ${rawTarget.toLocaleString()} examples in ${rawSeconds.toFixed(2)} s (${Math.round(rawPerS).toLocaleString()}/s)`,
);
console.log(
  `mixture (${strategy}, cap ${CAP}): ${examples.toLocaleString()} examples in ${mixSeconds.toFixed(2)} s (${Math.round(perS).toLocaleString()}/s)`,
);
console.log(
  `top sources: ${top.map((s) => `${s.name} ${(s.emitted / examples).toFixed(3)} (p=${s.probability.toFixed(3)}, epochs ${s.epochs})`).join(', ')}`,
);
console.log(
  `peak RSS ${peak.toFixed(1)} MB (${startRss.toFixed(1)} MB at start); sink checksum ${sink}`,
);
console.log(
  JSON.stringify({
    bench: 'data-mix',
    examples,
    tasks: TASKS,
    strategy,
    examples_per_s: Math.round(perS),
    raw_examples_per_s: Math.round(rawPerS),
    mix_to_raw_ratio: Number((perS / rawPerS).toFixed(3)),
    peak_rss_mb: Number(peak.toFixed(1)),
    start_rss_mb: Number(startRss.toFixed(1)),
  }),
);
