// Measures what a Deduper really holds: heap bytes per kept record for each mode / verify, and
// the heap growth per removed duplicate beyond what its newly kept records explain (which should
// be ~0: removed records are not stored).
// Texts are instruction-like, ~100 characters of words. Heap figures are after a full GC.
// Usage: npx tsx bench/dedup-memory.ts [kept=100000] [removed=100000]
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type DedupConfigInput, Deduper } from '../src/data/dedup.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const argv = process.argv.slice(2).map(Number);
const KEPT = argv[0] || 100_000;
const REMOVED = argv[1] || 100_000;

let x = 12345;
const rand = (n: number): number => {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return (x >>> 0) % n;
};
const vocab = Array.from({ length: 5000 }, (_, i) => `w${i.toString(36)}${'aeiou'[i % 5]}`);
function text(): string {
  const w: string[] = [];
  let len = 0;
  while (len < 100) {
    const v = vocab[rand(vocab.length)]!;
    w.push(v);
    len += v.length + 1;
  }
  return w.join(' ');
}

function heap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
}

const uniques = Array.from({ length: KEPT }, text);
const chars = uniques.reduce((s, t) => s + t.length, 0) / KEPT;
// Duplicates: half exact copies (different case), half one-word edits (near duplicates).
const dups = Array.from({ length: REMOVED }, (_, i) => {
  const t = uniques[rand(KEPT)]!;
  if (i % 2 === 0) return t.toUpperCase();
  const w = t.split(' ');
  w[rand(w.length)] = 'zz';
  return w.join(' ');
});

const figures: Record<string, unknown> = { kept: KEPT, removed: REMOVED, avgChars: chars };
const cases: [string, DedupConfigInput][] = [
  ['exact', { mode: 'exact' }],
  ['near_verifyExact', { mode: 'near', verify: 'exact' }],
  ['near_verifyEstimate', { mode: 'near', verify: 'estimate' }],
  ['both_verifyExact', { mode: 'both', verify: 'exact' }],
  ['both_verifyEstimate', { mode: 'both', verify: 'estimate' }],
];
for (const [name, config] of cases) {
  const before = heap();
  let d: Deduper | undefined = new Deduper(config);
  let i = 0;
  for (const t of uniques) d.check(t, i++);
  const afterKept = heap();
  const keptFirst = d.kept;
  let removed = 0;
  // Exact mode would keep the one-word edits: feed it only the exact copies.
  for (const t of config.mode === 'exact' ? dups.filter((_, j) => j % 2 === 0) : dups)
    if (d.check(t, i++)) removed++;
  const afterRemoved = heap();
  const perKept = (afterKept - before) / keptFirst;
  // Growth in the second pass not explained by the records it kept (exact mode keeps the edits).
  const perRemoved =
    removed > 0 ? (afterRemoved - afterKept - (d.kept - keptFirst) * perKept) / removed : 0;
  process.stdout.write(
    `${name.padEnd(20)} ${perKept.toFixed(0).padStart(6)} B per kept record (${(perKept / chars).toFixed(1)} B/char), ` +
      `${perRemoved.toFixed(1).padStart(6)} B per removed record (${removed} removed)\n`,
  );
  figures[`${name}_bytesPerKept`] = Math.round(perKept);
  figures[`${name}_bytesPerRemoved`] = Math.round(perRemoved * 10) / 10;
  figures[`${name}_removed`] = removed;
  d = undefined;
}
process.stdout.write(`${JSON.stringify(figures)}\n`);
