// bench/serve-limits: the abusive request of issue 11 (a 0.9 MB compact JSON body of 300,000
// empty prompts with n 16) against the server on the built-in tiny model shape: median time to
// its 400, beside a small real completion (max_tokens 16) and a same-size body refused as bad
// JSON at its first byte (the cost of receiving the bytes at all), and the heap growth across
// the refusal (after a gc when --expose-gc is given).
// Usage: node --expose-gc --import tsx bench/serve-limits.ts [repeats=21]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveCheckpoint } from '../src/models/checkpoint.ts';
import { CausalLM } from '../src/models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../src/models/tiny.ts';
import { startServer } from '../src/serve/listen.ts';

const REPEATS = Number(process.argv[2] ?? 21);
const texts = Array.from({ length: 100 }, (_, i) => `Hello number ${i}, the weather today.`);
const { tokenizer } = trainTinyTokenizer(texts, 400);
const spec = tinyLlamaConfig({ eosTokenId: tokenizer.eos!.id, padTokenId: tokenizer.pad!.id });
const dir = mkdtempSync(join(tmpdir(), 'ik-bench-serve-limits-'));
await saveCheckpoint(dir, {
  spec,
  tensors: CausalLM.random(spec, 1, tokenizer).weights,
  tokenizer,
  generationConfig: null,
});
const server = await startServer({ model: dir, port: 0, modelName: 'tiny' });
const post = async (body: string) => {
  const t = performance.now();
  const res = await fetch(`${server.url}/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  await res.arrayBuffer();
  return { ms: performance.now() - t, status: res.status };
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const abusive = JSON.stringify({ model: 'tiny', prompt: Array(300_000).fill(''), n: 16 });
const small = JSON.stringify({ model: 'tiny', prompt: 'Hello number 3', max_tokens: 16 });
const unparsable = `#${abusive.slice(1)}`;
const gc = (globalThis as { gc?: () => void }).gc;

const times = { refusal: [] as number[], small: [] as number[], receive: [] as number[] };
let heapGrowth = 0;
for (let i = 0; i < REPEATS; i++) {
  gc?.();
  const h0 = process.memoryUsage().heapUsed;
  const r = await post(abusive);
  heapGrowth = Math.max(heapGrowth, process.memoryUsage().heapUsed - h0);
  if (r.status !== 400) throw new Error(`the abusive request got ${r.status}, not 400`);
  times.refusal.push(r.ms);
  times.small.push((await post(small)).ms);
  times.receive.push((await post(unparsable)).ms);
}
await server.close();
const round = (x: number) => Math.round(x * 10) / 10;
console.log(
  JSON.stringify({
    body_bytes: abusive.length,
    refusal_ms_median: round(median(times.refusal)),
    small_request_ms_median: round(median(times.small)),
    receive_body_ms_median: round(median(times.receive)),
    max_heap_growth_mb: round(heapGrowth / 1e6),
    gc: gc !== undefined,
  }),
);
