import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MixtureConfig, type MixtureSource, mix, mixtureRates } from '../../src/data/mixture.ts';
import { ConfigError } from '../../src/util/errors.ts';

/** A lazy source of `size` examples named `${name}:${j}`; counts what it has produced. */
function source(
  name: string,
  size: number,
  produced = { n: 0 },
  opts: { async?: boolean } = {},
): MixtureSource<string> {
  return {
    name,
    size,
    open: ({ epoch }) => {
      function* gen() {
        for (let j = 0; j < size; j++) {
          produced.n++;
          yield `${name}:${epoch}:${j}`;
        }
      }
      if (!opts.async) return gen();
      return (async function* () {
        yield* gen();
      })();
    },
  };
}

async function take<T>(it: AsyncIterable<T>, limit = Number.POSITIVE_INFINITY): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    out.push(x);
    if (out.length >= limit) break;
  }
  return out;
}

test('rates: proportional with cap, temperature, explicit', () => {
  const s = [
    { name: 'a', size: 100 },
    { name: 'b', size: 1000 },
    { name: 'c', size: 100_000 },
  ];
  const p = mixtureRates(s, { cap: 1000 });
  assert.deepEqual(
    p.map((r) => r.rate),
    [100, 1000, 1000],
  );
  assert.deepEqual(
    p.map((r) => r.probability),
    [100 / 2100, 1000 / 2100, 1000 / 2100],
  );
  const t = mixtureRates(s, { strategy: 'temperature', temperature: 2 });
  assert.deepEqual(
    t.map((r) => r.rate),
    [10, Math.sqrt(1000), Math.sqrt(100_000)],
  );
  const tc = mixtureRates(s, { strategy: 'temperature', temperature: 3, cap: 1000 });
  assert.ok(Math.abs(tc[0]!.rate - 100 ** (1 / 3)) < 1e-12 && tc[1]!.rate === tc[2]!.rate);
  const e = mixtureRates(s, { strategy: 'explicit', rates: { a: 1, b: 1, c: 2 } });
  assert.deepEqual(
    e.map((r) => r.probability),
    [0.25, 0.25, 0.5],
  );
  assert.throws(
    () => mixtureRates(s, { strategy: 'explicit', rates: { a: 1, b: 1 } }),
    (x) => x instanceof ConfigError && x.field === 'rates.c',
  );
  assert.throws(
    () => mixtureRates(s, { strategy: 'explicit', rates: { a: 1, b: 1, c: 1, d: 1 } }),
    /unknown source 'd'/,
  );
  assert.throws(
    () => mixtureRates([{ name: 'x' }], {}),
    (x) => x instanceof ConfigError && /has no size/.test(x.message),
  );
  assert.throws(() => MixtureConfig.parse({ strategy: 'proportional', capp: 3 }), /capp/);
});

test('same seed gives the same sequence; a different seed a different one', async () => {
  const make = () => [source('a', 300), source('b', 200), source('c', 100)];
  const x = await take(mix(make(), { seed: 7 }));
  const y = await take(mix(make(), { seed: 7 }));
  const z = await take(mix(make(), { seed: 8 }));
  assert.equal(x.length, 600);
  assert.deepEqual(x, y);
  assert.notDeepEqual(x, z);
  // Without replacement: every example exactly once, each source in its own order.
  assert.equal(new Set(x).size, 600);
  const bs = x.filter((e) => e.startsWith('b:'));
  assert.deepEqual(
    bs,
    Array.from({ length: 200 }, (_, j) => `b:0:${j}`),
  );
});

test('realised proportions match the capped rates within tolerance (repeat mode)', async () => {
  const sizes = { big: 50_000, mid: 4000, small: 500, tiny: 50 };
  const srcs = Object.entries(sizes).map(([n, s]) => source(n, s));
  const m = mix(srcs, { cap: 4000, total: 40_000, onExhausted: 'repeat', seed: 3 });
  const got = await take(m);
  assert.equal(got.length, 40_000);
  assert.equal(m.summary.ended, 'total');
  const expect = { big: 4000 / 8550, mid: 4000 / 8550, small: 500 / 8550, tiny: 50 / 8550 };
  for (const s of m.summary.sources) {
    const frac = s.emitted / 40_000;
    const p = expect[s.name as keyof typeof expect];
    const sd = Math.sqrt((p * (1 - p)) / 40_000);
    assert.ok(Math.abs(frac - p) < 5 * sd, `${s.name}: ${frac} vs ${p}`);
    assert.equal(s.emitted, got.filter((e) => e.startsWith(`${s.name}:`)).length);
  }
  // Small sources were repeated for several epochs; the big one never wrapped.
  const tiny = m.summary.sources.find((s) => s.name === 'tiny')!;
  assert.ok(tiny.epochs > 1 && got.includes('tiny:1:0'));
  assert.equal(m.summary.sources.find((s) => s.name === 'big')!.epochs, 1);
});

test('temperature sampling flattens the distribution', async () => {
  const srcs = [source('a', 90_000), source('b', 10_000)];
  const m = mix(srcs, { strategy: 'temperature', temperature: 2, total: 20_000, seed: 1 });
  await take(m);
  const a = m.summary.sources[0]!.emitted / 20_000;
  assert.ok(Math.abs(a - 300 / 400) < 0.02, String(a)); // sqrt(90000)=300, sqrt(10000)=100
});

test('drop mode ends when every source is exhausted; stop mode at the first; async sources work', async () => {
  const m = mix([source('a', 10, undefined, { async: true }), source('b', 1000)], { seed: 2 });
  const all = await take(m);
  assert.equal(all.length, 1010);
  assert.equal(m.summary.ended, 'exhausted');
  assert.ok(m.summary.sources.every((s) => s.exhausted && s.epochs === 1));
  const s = mix([source('a', 10), source('b', 1000)], {
    strategy: 'explicit',
    rates: { a: 1, b: 1 },
    onExhausted: 'stop',
    seed: 2,
  });
  const some = await take(s);
  assert.equal(s.summary.ended, 'stopped');
  assert.equal(some.filter((e) => e.startsWith('a:')).length, 10);
  assert.ok(some.length < 1010);
  // A source that is empty from the start cannot loop forever in repeat mode.
  const r = mix([source('empty', 0), source('b', 5)], {
    strategy: 'explicit',
    rates: { empty: 1, b: 1 },
    onExhausted: 'repeat',
    total: 20,
    seed: 1,
  });
  assert.equal((await take(r)).length, 20);
  assert.ok(r.summary.sources[0]!.exhausted);
});

test('streaming: sources are pulled one example at a time and memory stays bounded', async () => {
  setFlagsFromString('--expose_gc');
  const gc = runInNewContext('gc') as () => void;
  const produced = { n: 0 };
  const pad = 'x'.repeat(200);
  const big: MixtureSource<{ s: string }> = {
    name: 'big',
    size: 800_000,
    open: function* () {
      for (let j = 0; j < 800_000; j++) {
        produced.n++;
        yield { s: `${j}${pad}` };
      }
    },
  };
  const small = source('small', 1000);
  const m = mix<unknown>([big, small as MixtureSource<unknown>], { seed: 5, cap: 1000 });
  gc();
  const before = process.memoryUsage().heapUsed;
  let n = 0;
  let peak = 0;
  for await (const _ of m) {
    n++;
    // No read-ahead: the big source has produced exactly what was emitted from it.
    if ((n & 0x3ffff) === 0) {
      assert.equal(produced.n, m.summary.sources[0]!.emitted);
      gc();
      peak = Math.max(peak, process.memoryUsage().heapUsed - before);
    }
  }
  assert.equal(n, 801_000);
  // Holding the examples would take > 160 MB (800k strings of ~210 bytes).
  assert.ok(peak < 20 * 2 ** 20, `heap grew by ${(peak / 2 ** 20).toFixed(1)} MB`);
});

test('sources are closed when the mixture ends, stops, or the consumer breaks', async () => {
  const closed: string[] = [];
  const closing = (name: string, size: number): MixtureSource<number> => ({
    name,
    size,
    open: function* () {
      try {
        for (let j = 0; j < size; j++) yield j;
      } finally {
        closed.push(name);
      }
    },
  });
  const m = mix([closing('a', 1000), closing('b', 1000)], { seed: 1 });
  await take(m, 10);
  assert.deepEqual(closed.sort(), ['a', 'b']);
  assert.equal(m.summary.ended, 'running');
  closed.length = 0;
  const s = mix([closing('a', 3), closing('b', 1000)], {
    strategy: 'explicit',
    rates: { a: 1, b: 1 },
    onExhausted: 'stop',
    seed: 1,
  });
  await take(s);
  assert.equal(s.summary.ended, 'stopped');
  assert.deepEqual(closed.sort(), ['a', 'b']);
  assert.throws(() => s[Symbol.asyncIterator](), /only once/);
});

test('mixFiles: files as sources with explicit rates; mismatched kinds are a ConfigError', async () => {
  const { mkdtempSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { writeRecords } = await import('../../src/data/io.ts');
  const { mixFiles } = await import('../../src/data/mix-files.ts');
  const d = mkdtempSync(join(tmpdir(), 'ik-mixf-'));
  const a = join(d, 'a.jsonl');
  const b = join(d, 'b.json');
  await writeRecords(
    a,
    Array.from({ length: 50 }, (_, i) => ({ prompt: `a${i}`, completion: 'x' })),
  );
  await writeRecords(
    b,
    Array.from({ length: 50 }, (_, i) => ({ prompt: `b${i}`, completion: 'y' })),
  );
  const out = join(d, 'out.jsonl');
  const r = await mixFiles({
    config: {
      strategy: 'explicit',
      rates: { a: 3, b: 1 },
      total: 400,
      onExhausted: 'repeat',
      seed: 4,
      sources: [{ path: a }, { path: b }],
    },
    output: out,
  });
  assert.equal(r.written, 400);
  assert.equal(r.kind, 'prompt_completion');
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 400);
  assert.ok(Math.abs(r.sources[0]!.emitted / 400 - 0.75) < 0.08);
  const c = join(d, 'c.jsonl');
  await writeRecords(c, [{ instruction: 'i', input: '', output: 'o' }]);
  await assert.rejects(
    mixFiles({ config: { sources: [{ path: a }, { path: c }] }, output: join(d, 'x.jsonl') }),
    (e) =>
      e instanceof ConfigError &&
      /source 'c' holds instruction records, the others prompt_completion/.test(e.message),
  );
  await assert.rejects(
    mixFiles({
      config: { onExhausted: 'repeat', sources: [{ path: a }] },
      output: join(d, 'y.jsonl'),
    }),
    (e) => e instanceof ConfigError && e.field === 'total',
  );
});

test('mixFiles with skipInvalid: each skipped line is reported once, with its location', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { mixFiles } = await import('../../src/data/mix-files.ts');
  const d = mkdtempSync(join(tmpdir(), 'ik-mixs-'));
  const a = join(d, 'a.jsonl');
  const b = join(d, 'b.jsonl');
  const good = (p: string, n: number) =>
    Array.from({ length: n }, (_, i) => JSON.stringify({ prompt: `${p}${i}`, completion: 'x' }));
  writeFileSync(a, [...good('a', 3), '{"prompt":', ...good('a', 3)].join('\n'));
  writeFileSync(b, ['{"prompt":"b","completion":1}', ...good('b', 5)].join('\n'));
  // a's size is counted in a pass; b's is given, so its skips are seen while mixing. With
  // 'repeat', both files are read several times over: each bad line must still count once.
  const r = await mixFiles({
    config: {
      strategy: 'explicit',
      rates: { a: 1, b: 1 },
      total: 60,
      onExhausted: 'repeat',
      seed: 2,
      sources: [{ path: a }, { path: b, size: 5 }],
    },
    output: join(d, 'out.jsonl'),
    skipInvalid: true,
  });
  assert.equal(r.written, 60);
  assert.ok(r.sources.every((s) => s.epochs > 2));
  assert.equal(r.skipped, 2);
  assert.equal(r.reasons.length, 2);
  assert.match(r.reasons.find((x) => x.includes('a.jsonl'))!, /a\.jsonl:4: invalid JSON/);
  assert.match(r.reasons.find((x) => x.includes('b.jsonl'))!, /b\.jsonl:1: field 'completion'/);
});
