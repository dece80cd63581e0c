// The OpenAI-compatible server, exercised with the official `openai` npm client over loopback:
// models, completions (plain, echo + logprobs), chat (plain, streaming, logprobs), n, stop,
// top_p, seeds, errors in OpenAI's shape (also in streams), streamed usage, the event loop
// staying free, and a disconnected stream being cancelled in the worker.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { generate } from '../../src/models/generate.ts';
import { type RunningServer, startServer } from '../../src/serve/listen.ts';
import { CONTEXT, lm, saveTinyModel, tokenizer } from './tiny-model.ts';

// Keeps greedy text going to max_tokens: the random model may otherwise end it early with EOS.
const noEos = { [String(tokenizer.eos!.id)]: -100 };
const LONG = 'Hello '.repeat(CONTEXT + 10);

let server: RunningServer;
let client: OpenAI;

before(async () => {
  const dir = await saveTinyModel();
  server = await startServer({
    model: dir,
    port: 0,
    modelName: 'tiny',
    maxTokens: CONTEXT - 12,
    maxConcurrent: 40,
    maxBodyBytes: 20_000,
  });
  client = new OpenAI({ baseURL: server.url, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await server?.close();
});

test('models, completions and greedy text equal to the library', async () => {
  const models = await client.models.list();
  assert.deepEqual(
    models.data.map((m) => m.id),
    ['tiny'],
  );
  const res = await client.completions.create({
    model: 'tiny',
    prompt: 'Hello number 4',
    max_tokens: 8,
    temperature: 0,
  });
  const [want] = await generate(lm, ['Hello number 4'], { max_new_tokens: 8 });
  assert.equal(res.choices[0]!.text, want!.text);
  assert.equal(res.usage!.prompt_tokens, tokenizer.encode('Hello number 4').length);
  assert.equal(res.usage!.completion_tokens, want!.tokens.length);
  assert.equal(res.object, 'text_completion');
});

test('completions: echo with logprobs gives prompt log-probs; n and stop', async () => {
  const res = await client.completions.create({
    model: 'tiny',
    prompt: 'Hello number 12, the',
    max_tokens: 0,
    echo: true,
    logprobs: 1,
    temperature: 0,
  });
  const lp = res.choices[0]!.logprobs!;
  assert.equal(res.choices[0]!.text, 'Hello number 12, the');
  assert.equal(lp.tokens!.length, tokenizer.encode('Hello number 12, the').length);
  assert.equal(lp.token_logprobs![0], null);
  assert.ok(lp.token_logprobs!.slice(1).every((v) => typeof v === 'number' && v <= 0));
  assert.equal(lp.text_offset![1], lp.tokens![0]!.length);
  const many = await client.completions.create({
    model: 'tiny',
    prompt: ['Hello', 'Hello number'],
    n: 2,
    max_tokens: 5,
    temperature: 1,
    seed: 3,
  });
  assert.deepEqual(many.choices.map((c) => c.index).sort(), [0, 1, 2, 3]);
  // Stop strings: the stop is taken from the unconstrained greedy text, so it must occur.
  const free = await client.completions.create({
    model: 'tiny',
    prompt: 'Hello',
    max_tokens: 12,
    temperature: 0,
    logit_bias: noEos,
  });
  const text = free.choices[0]!.text;
  assert.equal(free.choices[0]!.finish_reason, 'length');
  assert.ok(text.length >= 6, `greedy text '${text}' is too short to pick a stop from`);
  const stopAt = text.slice(4, 6);
  const cut = await client.completions.create({
    model: 'tiny',
    prompt: 'Hello',
    max_tokens: 12,
    temperature: 0,
    logit_bias: noEos,
    stop: ['never appears', stopAt],
  });
  assert.equal(cut.choices[0]!.text, text.slice(0, text.indexOf(stopAt)));
  assert.equal(cut.choices[0]!.finish_reason, 'stop');
});

test('top_p reaches sampling: a tiny nucleus samples the greedy text whatever the seed', async () => {
  const req = { model: 'tiny', prompt: 'Hello number 5', max_tokens: 12, logit_bias: noEos };
  const greedy = (await client.completions.create({ ...req, temperature: 0 })).choices[0]!.text;
  const sample = async (seed: number, top_p: number) =>
    (await client.completions.create({ ...req, temperature: 1, top_p, seed })).choices[0]!.text;
  const free = await Promise.all([1, 2, 3, 4].map((s) => sample(s, 1)));
  assert.ok(
    free.some((t) => t !== greedy),
    'at top_p 1 some seed samples away from greedy',
  );
  const nucleus = await Promise.all([1, 2, 3, 4].map((s) => sample(s, 1e-6)));
  assert.deepEqual(nucleus, [greedy, greedy, greedy, greedy]);
});

test('without a seed repeated sampled requests differ; with the same seed they repeat', async () => {
  const req = {
    model: 'tiny',
    prompt: 'Hello number 8',
    max_tokens: 16,
    temperature: 1,
    logit_bias: noEos,
  };
  const unseeded = await Promise.all([1, 2, 3, 4].map(() => client.completions.create(req)));
  const distinct = new Set(unseeded.map((r) => r.choices[0]!.text));
  assert.ok(distinct.size >= 2, `4 unseeded samples gave ${distinct.size} distinct text(s)`);
  const chat = async (seed?: number) =>
    (
      await client.chat.completions.create({
        model: 'tiny',
        messages: [{ role: 'user', content: 'Hello number 8' }],
        max_tokens: 16,
        temperature: 1,
        logit_bias: noEos,
        ...(seed === undefined ? {} : { seed }),
      })
    ).choices[0]!.message.content;
  const chats = new Set(await Promise.all([1, 2, 3, 4].map(() => chat())));
  assert.ok(chats.size >= 2, 'unseeded chat samples differ too');
  const a = await client.completions.create({ ...req, seed: 77 });
  const b = await client.completions.create({ ...req, seed: 77 });
  assert.equal(a.choices[0]!.text, b.choices[0]!.text);
  assert.equal(await chat(78), await chat(78));
});

test('chat: plain, streaming (chunks reassemble), logprobs', async () => {
  const messages = [{ role: 'user' as const, content: 'Hello number 7' }];
  const plain = await client.chat.completions.create({
    model: 'tiny',
    messages,
    max_tokens: 10,
    temperature: 0,
  });
  assert.equal(plain.object, 'chat.completion');
  assert.equal(plain.choices[0]!.message.role, 'assistant');
  const stream = await client.chat.completions.create({
    model: 'tiny',
    messages,
    max_tokens: 10,
    temperature: 0,
    stream: true,
  });
  let text = '';
  let chunks = 0;
  let finish: string | null = null;
  for await (const ch of stream) {
    chunks++;
    text += ch.choices[0]?.delta.content ?? '';
    finish = ch.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, plain.choices[0]!.message.content);
  assert.ok(chunks >= 3);
  assert.ok(finish === 'stop' || finish === 'length');
  const withLp = await client.chat.completions.create({
    model: 'tiny',
    messages,
    max_tokens: 4,
    temperature: 0,
    logprobs: true,
    top_logprobs: 3,
  });
  const content = withLp.choices[0]!.logprobs!.content!;
  assert.ok(content.length > 0);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.top_logprobs[0]!.logprob >= t.logprob - 1e-6, 'greedy picks the top token');
  }
});

test('errors come back in OpenAI shape', async () => {
  const expectError = async (p: Promise<unknown>, status: number, re: RegExp) => {
    await assert.rejects(
      p,
      (e: unknown) => e instanceof OpenAI.APIError && e.status === status && re.test(e.message),
    );
  };
  await expectError(
    client.completions.create({ model: 'nope', prompt: 'x', max_tokens: 2 }),
    404,
    /does not exist/,
  );
  await expectError(
    client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: -1 }),
    400,
    /max_tokens/,
  );
  await expectError(
    client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: CONTEXT + 100 }),
    400,
    new RegExp(`at most ${CONTEXT - 12}`),
  );
  await expectError(
    client.completions.create({ model: 'tiny', prompt: LONG, max_tokens: 10 }),
    400,
    /maximum context length/,
  );
  const raw = await fetch(`${server.url}/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"model": "tiny", "prompt": ',
  });
  assert.equal(raw.status, 400);
  const body = (await raw.json()) as { error: { message: string; type: string } };
  assert.match(body.error.message, /parse the JSON/);
  assert.equal(body.error.type, 'invalid_request_error');
  const big = await fetch(`${server.url}/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', prompt: 'x'.repeat(30_000) }),
  });
  assert.equal(big.status, 413);
});

// The absolute figure (< 50 ms) is measured by bench/serve; here, where the machine may be busy,
// the check is relative: every health reply comes back while the streams are still running, in
// a small fraction of the time the streams take, so the event loop is not blocked by decoding.
test('32 concurrent streams: the health endpoint answers while they run', async () => {
  const t0 = performance.now();
  const streams = Array.from({ length: 32 }, (_, i) =>
    client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: `Hello number ${i}` }],
      // As long as the context allows, so the streams outlast the health checks on a fast machine.
      max_tokens: CONTEXT - 24,
      temperature: 1,
      seed: i,
      logit_bias: noEos,
      stream: true,
    }),
  );
  let started = 0;
  let finished = 0;
  const drains = streams.map(async (p) => {
    let n = 0;
    for await (const _ of await p) {
      if (n++ === 0) started++;
    }
    finished++;
    return n;
  });
  // Measure while every stream is running (after each has sent its first chunk).
  while (started < 32) await new Promise((r) => setTimeout(r, 5));
  const took: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const h = await fetch(`${server.url.replace('/v1', '')}/health`);
    took.push(performance.now() - t);
    assert.equal(h.status, 200);
  }
  // The median, not the worst: on a 2-core CI machine one reply in five can wait behind the
  // scheduler (452 ms once, in a 4 s run); a loop blocked by decoding would delay every reply.
  const median = took.sort((a, b) => a - b)[2] as number;
  assert.equal(finished, 0, 'the health checks took until a stream had finished');
  await Promise.all(drains);
  const total = performance.now() - t0;
  assert.ok(
    median < total / 10,
    `health took ${took.map((x) => x.toFixed(1)).join(', ')} ms; the streams ${total.toFixed(0)} ms`,
  );
});

test('a client that disconnects mid-stream: the worker stops decoding and frees the slot', async () => {
  const maxTokens = CONTEXT - 12;
  const body = { model: 'tiny', prompt: 'Hello', max_tokens: maxTokens, temperature: 1, seed: 5 };
  // Without a disconnect this request runs to max_tokens (EOS is biased away).
  const whole = await client.completions.create({ ...body, logit_bias: noEos });
  assert.equal(whole.usage!.completion_tokens, maxTokens);
  const before = server.engine.finished.length;
  const ctrl = new AbortController();
  const res = await fetch(`${server.url}/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, logit_bias: noEos, stream: true }),
    signal: ctrl.signal,
  });
  const reader = res.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  assert.match(first, /"text"/, 'a token was streamed before the disconnect');
  ctrl.abort();
  const t0 = performance.now();
  while (server.engine.inFlight > 0 && performance.now() - t0 < 5000)
    await new Promise((r) => setTimeout(r, 10));
  assert.equal(server.engine.inFlight, 0);
  const done = server.engine.finished.slice(before);
  assert.equal(done.length, 1);
  assert.equal(done[0]!.finish, 'cancelled');
  assert.equal(done[0]!.maxTokens, maxTokens);
  assert.ok(
    done[0]!.completionTokens < maxTokens / 2,
    `${done[0]!.completionTokens} of ${maxTokens} tokens decoded after the disconnect`,
  );
});
