// bench/serve: the OpenAI-compatible server on the built-in tiny model shape (random weights,
// own tokenizer), loaded by the openai client at concurrency 1, 8 and 32. Reports requests/s
// and generated tokens/s at each level, their ratio to concurrency 1 (what step-level batching
// buys), and the worst /health latency seen while 32 streams run.
// Usage: npx tsx bench/serve.ts [requests_per_level=64] [max_tokens=32]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { saveCheckpoint } from '../src/models/checkpoint.ts';
import { CausalLM } from '../src/models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../src/models/tiny.ts';
import { startServer } from '../src/serve/listen.ts';

const N = Number(process.argv[2] ?? 64);
const MAX_TOKENS = Number(process.argv[3] ?? 32);
const texts = Array.from(
  { length: 400 },
  (_, i) =>
    `Sentence ${i}: the ${['red', 'blue', 'green'][i % 3]} box holds ${i % 13} small stones.`,
);
const { tokenizer } = trainTinyTokenizer(texts, 2048);
const spec = tinyLlamaConfig({ eosTokenId: tokenizer.eos!.id, padTokenId: tokenizer.pad!.id });
const dir = mkdtempSync(join(tmpdir(), 'ik-bench-serve-'));
await saveCheckpoint(dir, {
  spec,
  tensors: CausalLM.random(spec, 1, tokenizer).weights,
  tokenizer,
  generationConfig: null,
});
const server = await startServer({ model: dir, port: 0, modelName: 'tiny', maxConcurrent: 256 });
const client = new OpenAI({ baseURL: server.url, apiKey: 'x', maxRetries: 0 });

async function level(concurrency: number) {
  let next = 0;
  let tokens = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < N) {
        const i = next++;
        // stop_token_ids are not exposed; a random model rarely emits EOS, so lengths are ~max_tokens.
        const r = await client.completions.create({
          model: 'tiny',
          prompt: texts[i % texts.length]!.slice(0, 30),
          max_tokens: MAX_TOKENS,
          temperature: 1,
          seed: i,
        });
        tokens += r.usage!.completion_tokens;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  return {
    concurrency,
    requests_per_s: Math.round((N / s) * 100) / 100,
    tokens_per_s: Math.round(tokens / s),
  };
}

async function healthUnderLoad(): Promise<number> {
  const streams = Array.from({ length: 32 }, (_, i) =>
    client.completions.create({
      model: 'tiny',
      prompt: texts[i]!.slice(0, 20),
      max_tokens: 64,
      temperature: 1,
      seed: i,
      stream: true,
    }),
  );
  let started = 0;
  const drains = streams.map(async (p) => {
    let n = 0;
    for await (const _ of await p) if (n++ === 0) started++;
  });
  while (started < 32) await new Promise((r) => setTimeout(r, 5));
  let worst = 0;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await fetch(server.url.replace('/v1', '/health'));
    worst = Math.max(worst, performance.now() - t0);
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(drains);
  return worst;
}

await level(4); // warm-up
const levels = [await level(1), await level(8), await level(32)];
const health = await healthUnderLoad();
await server.close();
for (const l of levels)
  console.log(`concurrency ${l.concurrency}: ${l.requests_per_s} req/s, ${l.tokens_per_s} tok/s`);
console.log(`worst /health latency with 32 streams: ${health.toFixed(1)} ms`);
const base = levels[0]!;
console.log(
  JSON.stringify({
    bench: 'serve',
    model: 'tiny (3.5M, random)',
    max_tokens: MAX_TOKENS,
    requests_per_level: N,
    levels,
    speedup_8: Math.round((levels[1]!.tokens_per_s / base.tokens_per_s) * 100) / 100,
    speedup_32: Math.round((levels[2]!.tokens_per_s / base.tokens_per_s) * 100) / 100,
    health_ms_max_32_streams: Math.round(health * 10) / 10,
  }),
);
