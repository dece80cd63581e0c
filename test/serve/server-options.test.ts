// The server's options, on a second server: a PEFT adapter merged at load (served logits and
// greedy text equal the merged model's), an API key, a low max-concurrent limit (429 in
// OpenAI's shape, before any stream opens), and an error after a stream has opened (the engine
// shutting down), reported in the stream as an error event the openai client raises.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { generate, lastLogits } from '../../src/models/generate.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { mergeLora, savePeftAdapter } from '../../src/models/peft.ts';
import { type RunningServer, startServer } from '../../src/serve/listen.ts';
import { CONTEXT, lm, randomAdapter, saveTinyModel, tokenizer } from './tiny-model.ts';

// Keeps a stream going to max_tokens: the random model may otherwise end it early with EOS.
const noEos = { [String(tokenizer.eos!.id)]: -100 };

const API_KEY = 'sk-local-test';
let server: RunningServer;
let client: OpenAI;

const adapter = randomAdapter();
const merged = new CausalLM(lm.spec, mergeLora(lm.weights, adapter), tokenizer);

before(async () => {
  const adapterDir = mkdtempSync(join(tmpdir(), 'ik-serve-adapter-'));
  await savePeftAdapter(adapterDir, adapter);
  server = await startServer({
    model: await saveTinyModel(),
    adapter: adapterDir,
    port: 0,
    modelName: 'tiny',
    maxConcurrent: 2,
    apiKey: API_KEY,
  });
  client = new OpenAI({ baseURL: server.url, apiKey: API_KEY, maxRetries: 0 });
});
after(async () => {
  await server?.close();
});

const waitIdle = async () => {
  const t0 = performance.now();
  while (server.engine.inFlight > 0 && performance.now() - t0 < 5000)
    await new Promise((r) => setTimeout(r, 10));
  assert.equal(server.engine.inFlight, 0);
};

/** Opens a long stream and resolves once its first chunk is in; `stop` drops it. */
async function holdStream(seed: number) {
  const ctrl = new AbortController();
  const stream = await client.completions.create(
    {
      model: 'tiny',
      prompt: 'Hello',
      // Long enough that neither stream can finish while the test looks at both.
      max_tokens: CONTEXT - 16,
      temperature: 1,
      seed,
      logit_bias: noEos,
      stream: true,
    },
    { signal: ctrl.signal },
  );
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  return { stop: () => ctrl.abort(), rest: it };
}

const logSoftmax = (x: Float32Array): Float64Array => {
  let m = -Infinity;
  for (const v of x) m = Math.max(m, v);
  let z = 0;
  for (const v of x) z += Math.exp(v - m);
  return Float64Array.from(x, (v) => v - m - Math.log(z));
};

test('--adapter: the served model is the merged model (prompt log-probs, greedy text)', async () => {
  const prompt = 'Hello number 21, the weather';
  const ids = tokenizer.encode(prompt);
  const res = await client.completions.create({
    model: 'tiny',
    prompt,
    max_tokens: 0,
    echo: true,
    logprobs: 1,
  });
  const served = res.choices[0]!.logprobs!.token_logprobs!;
  assert.equal(served.length, ids.length);
  let baseDiff = 0;
  for (let t = 1; t < ids.length; t++) {
    const prefix = ids.slice(0, t);
    const want = logSoftmax(await lastLogits(merged, prefix))[ids[t]!]!;
    const base = logSoftmax(await lastLogits(lm, prefix))[ids[t]!]!;
    assert.ok(Math.abs(served[t]! - want) < 1e-4, `token ${t}: ${served[t]} vs merged ${want}`);
    baseDiff = Math.max(baseDiff, Math.abs(served[t]! - base));
  }
  assert.ok(baseDiff > 1e-2, `the adapter changes the log-probs (max diff ${baseDiff})`);
  const greedy = await client.completions.create({
    model: 'tiny',
    prompt,
    max_tokens: 10,
    temperature: 0,
  });
  const [withAdapter] = await generate(merged, [prompt], { max_new_tokens: 10 });
  const [withoutAdapter] = await generate(lm, [prompt], { max_new_tokens: 10 });
  assert.equal(greedy.choices[0]!.text, withAdapter!.text);
  assert.notEqual(withAdapter!.text, withoutAdapter!.text);
});

test('an API key is required when set: 401 in OpenAI shape without it or with a wrong one', async () => {
  const refused: Record<string, string>[] = [
    {},
    { authorization: 'Bearer wrong' },
    { authorization: API_KEY },
  ];
  for (const headers of refused) {
    const res = await fetch(`${server.url}/models`, { headers });
    assert.equal(res.status, 401);
    const body = (await res.json()) as { error: { code: string; type: string } };
    assert.equal(body.error.code, 'invalid_api_key');
    assert.equal(body.error.type, 'invalid_request_error');
  }
  const wrong = new OpenAI({ baseURL: server.url, apiKey: 'nope', maxRetries: 0 });
  await assert.rejects(
    wrong.completions.create({ model: 'tiny', prompt: 'Hi', max_tokens: 1 }),
    (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401,
  );
  const ok = await fetch(`${server.url}/models`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  assert.equal(ok.status, 200);
  // The health endpoint stays open for load balancers.
  assert.equal((await fetch(`${server.url.replace('/v1', '')}/health`)).status, 200);
});

test('over the max-concurrent limit: 429 in OpenAI shape with Retry-After, streams included', async () => {
  const a = await holdStream(1);
  const b = await holdStream(2);
  assert.equal(server.engine.inFlight, 2);
  const is429 = (e: unknown) =>
    e instanceof OpenAI.RateLimitError &&
    e.status === 429 &&
    e.code === 'rate_limit_exceeded' &&
    e.type === 'rate_limit_error' &&
    /limit of 2 requests/.test(e.message) &&
    e.headers.get('retry-after') === '1';
  await assert.rejects(
    client.completions.create({ model: 'tiny', prompt: 'Hi', max_tokens: 2 }),
    is429,
  );
  await assert.rejects(
    client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 2,
      stream: true,
    }),
    is429,
  );
  a.stop();
  b.stop();
  await waitIdle();
  // A request with more choices than the server ever runs at once cannot succeed later: 400.
  await assert.rejects(
    client.completions.create({ model: 'tiny', prompt: 'Hi', max_tokens: 2, n: 3 }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'n',
  );
  // Once the slots are free, requests go through again.
  const ok = await client.completions.create({ model: 'tiny', prompt: 'Hi', max_tokens: 2, n: 2 });
  assert.equal(ok.choices.length, 2);
});

// Last: it stops this server's engine.
test('an error after the stream opened arrives as an error event the client raises', async () => {
  const stream = await client.chat.completions.create({
    model: 'tiny',
    messages: [{ role: 'user', content: 'Hello' }],
    max_tokens: 100,
    temperature: 1,
    seed: 3,
    logit_bias: noEos,
    stream: true,
  });
  let chunks = 0;
  await assert.rejects(
    async () => {
      for await (const _ of stream) {
        if (++chunks === 2) await server.engine.close();
      }
    },
    (e: unknown) => e instanceof OpenAI.APIError && /server shutting down/.test(e.message),
  );
  assert.ok(chunks >= 2 && chunks < 100, `${chunks} chunks before the error`);
});
