// The server's options, on a second server: a low max-concurrent limit (429 in OpenAI's shape,
// before any stream opens), and an error after a stream has opened (the engine shutting
// down), reported in the stream as an error event the openai client raises.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { type RunningServer, startServer } from '../../src/serve/listen.ts';
import { saveTinyModel, tokenizer } from './tiny-model.ts';

// Keeps a stream going to max_tokens: the random model may otherwise end it early with EOS.
const noEos = { [String(tokenizer.eos!.id)]: -100 };

let server: RunningServer;
let client: OpenAI;

before(async () => {
  server = await startServer({
    model: await saveTinyModel(),
    port: 0,
    modelName: 'tiny',
    maxConcurrent: 2,
  });
  client = new OpenAI({ baseURL: server.url, apiKey: 'unused', maxRetries: 0 });
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
      max_tokens: 120,
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
