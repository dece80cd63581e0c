// Limits checked before any job is built, on a real server over the tiny model: the abusive
// request of issue 11 (a 0.9 MB body of 300,000 empty prompts with n 16) refused quickly and
// without the heap growing, prompt tokens over the server's total refused (and counting a huge
// prompt stopped early), chat's max_tokens defaulting to the rest of the context, and OpenAI
// fields the server does not implement refused by name.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import OpenAI from 'openai';
import { type RunningServer, startServer } from '../../src/serve/listen.ts';
import { CONTEXT, saveTinyModel, tokenizer } from './tiny-model.ts';

// Keeps greedy text going to max_tokens: the random model may otherwise end it early with EOS.
const noEos = { [String(tokenizer.eos!.id)]: -100 };
const MAX_PROMPT_TOKENS = 300;

// A gc() for the heap checks, when the runtime allows exposing it (node does).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (() => void) | undefined;

let server: RunningServer;
let client: OpenAI;

before(async () => {
  server = await startServer({
    model: await saveTinyModel(),
    port: 0,
    modelName: 'tiny',
    maxPromptTokens: MAX_PROMPT_TOKENS,
  });
  client = new OpenAI({ baseURL: server.url, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await server?.close();
});

const post = (path: string, body: string) =>
  fetch(`${server.url}/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });

interface ErrorReply {
  error: { message: string; type: string; param: string | null; code: string | null };
}

async function timed(f: () => Promise<Response>): Promise<{ ms: number; res: Response }> {
  const t = performance.now();
  const res = await f();
  await res.arrayBuffer();
  return { ms: performance.now() - t, res };
}

const minOf = async (k: number, f: () => Promise<number>) => {
  let best = Infinity;
  for (let i = 0; i < k; i++) best = Math.min(best, await f());
  return best;
};

test('300,000 empty prompts with n 16 (0.9 MB): refused at once, heap unchanged', async (t) => {
  const abusive = JSON.stringify({ model: 'tiny', prompt: Array(300_000).fill(''), n: 16 });
  assert.ok(abusive.length > 850_000 && abusive.length < 1_000_000, 'under the 1 MB body limit');
  // What the refusal is measured against: one small real request, and receiving a body this
  // size at all (the same bytes, refused as bad JSON at the first character).
  const small = JSON.stringify({ model: 'tiny', prompt: 'Hello number 3', max_tokens: 16 });
  const unparsable = `#${abusive.slice(1)}`;
  const smallMs = await minOf(3, async () => (await timed(() => post('completions', small))).ms);
  const bytesMs = await minOf(
    3,
    async () => (await timed(() => post('completions', unparsable))).ms,
  );

  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const first = await post('completions', abusive);
  const heapAfter = process.memoryUsage().heapUsed;
  assert.equal(first.status, 400);
  // Today's server built 4.8 million jobs on the way (1.1 GB of heap); the refusal holds no
  // more than a few copies of the body.
  assert.ok(
    heapAfter - heapBefore < 8 * abusive.length,
    `heap grew ${((heapAfter - heapBefore) / 1e6).toFixed(1)} MB for a ${(abusive.length / 1e6).toFixed(1)} MB body`,
  );
  const body = (await first.json()) as ErrorReply;
  assert.equal(body.error.type, 'invalid_request_error');
  assert.equal(body.error.param, 'prompt');
  assert.match(body.error.message, /more than 64 prompts/);
  const refusalMs = await minOf(
    3,
    async () => (await timed(() => post('completions', abusive))).ms,
  );
  t.diagnostic(
    `refusal ${refusalMs.toFixed(1)} ms, small request ${smallMs.toFixed(1)} ms, receiving the body ${bytesMs.toFixed(1)} ms, heap +${((heapAfter - heapBefore) / 1e6).toFixed(2)} MB`,
  );
  assert.ok(
    refusalMs < smallMs + 2 * bytesMs,
    `refusal ${refusalMs.toFixed(1)} ms; a small request ${smallMs.toFixed(1)} ms, receiving the body ${bytesMs.toFixed(1)} ms`,
  );
  if (gc) {
    gc();
    const retained = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(retained < 2 * abusive.length, `${(retained / 1e6).toFixed(1)} MB retained`);
  }
  assert.equal(server.engine.inFlight, 0);
});

test('prompts x n over the concurrency limit: refused naming n, before any job', async () => {
  const before = server.engine.finished.length;
  const res = await post(
    'completions',
    JSON.stringify({ model: 'tiny', prompt: Array(5).fill('Hello'), n: 16, max_tokens: 1 }),
  );
  assert.equal(res.status, 400);
  const body = (await res.json()) as ErrorReply;
  assert.equal(body.error.param, 'n');
  assert.match(body.error.message, /80 completions \(5 prompts × n 16\)/);
  assert.equal(server.engine.finished.length, before, 'no job ran');
});

test('prompt tokens over the server total: refused before any job; a huge prompt is not tokenized whole', async () => {
  const before = server.engine.finished.length;
  // Each prompt fits the context; together they pass the server's total.
  const prompt = 'Hello number 5, the weather is sunny today. '.repeat(8);
  const each = tokenizer.encode(prompt).length;
  const count = Math.ceil((MAX_PROMPT_TOKENS + 1) / each);
  assert.ok(each < CONTEXT && (count - 1) * each <= MAX_PROMPT_TOKENS && count <= 16);
  await assert.rejects(
    client.completions.create({
      model: 'tiny',
      prompt: Array(count).fill(prompt),
      max_tokens: 1,
    }),
    (e: unknown) =>
      e instanceof OpenAI.BadRequestError &&
      e.param === 'prompt' &&
      new RegExp(
        `have ${count * each} tokens; this server accepts at most ${MAX_PROMPT_TOKENS}`,
      ).test(e.message),
  );
  // One fewer prompt is within the total and is served.
  const ok = await client.completions.create({
    model: 'tiny',
    prompt: Array(count - 1).fill(prompt),
    max_tokens: 1,
  });
  assert.equal(ok.usage!.prompt_tokens, (count - 1) * each);
  assert.equal(server.engine.finished.length, before + count - 1, 'only the served jobs ran');
  // A 900,000-character prompt cannot fit the context: refused from its length, not tokenized.
  await assert.rejects(
    client.completions.create({ model: 'tiny', prompt: 'x'.repeat(900_000), max_tokens: 1 }),
    (e: unknown) =>
      e instanceof OpenAI.BadRequestError &&
      e.code === 'context_length_exceeded' &&
      /the prompt has at least \d+ and max_tokens is 1/.test(e.message),
  );
});

test('chat without max_tokens may use the rest of the context (OpenAI); completions keep 16', async () => {
  const messages = [{ role: 'user' as const, content: 'Hello number 9' }];
  const chat = await client.chat.completions.create({
    model: 'tiny',
    messages,
    temperature: 0,
    logit_bias: noEos,
  });
  const u = chat.usage!;
  assert.equal(chat.choices[0]!.finish_reason, 'length');
  assert.equal(u.completion_tokens, CONTEXT - u.prompt_tokens);
  const legacy = await client.completions.create({
    model: 'tiny',
    prompt: 'Hello number 9',
    temperature: 0,
    logit_bias: noEos,
  });
  assert.equal(legacy.usage!.completion_tokens, 16);
  // More messages than the context has tokens: refused before the template renders them.
  const many = await post(
    'chat/completions',
    JSON.stringify({ model: 'tiny', messages: Array(CONTEXT + 1).fill(messages[0]) }),
  );
  assert.equal(many.status, 400);
  const e = (await many.json()) as ErrorReply;
  assert.equal(e.error.param, 'messages');
  assert.match(e.error.message, new RegExp(`has ${CONTEXT + 1} messages`));
  // A conversation that fills the context leaves no room: refused, naming messages.
  await assert.rejects(
    client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'Hello '.repeat(CONTEXT) }],
    }),
    (e: unknown) =>
      e instanceof OpenAI.BadRequestError &&
      e.param === 'messages' &&
      e.code === 'context_length_exceeded',
  );
});

test('fields the server does not implement are refused by name; harmless ones are accepted', async () => {
  const chat = { model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 };
  const completion = { model: 'tiny', prompt: 'Hi', max_tokens: 1 };
  const refused: [string, Record<string, unknown>, string][] = [
    [
      'chat/completions',
      { ...chat, tools: [{ type: 'function', function: { name: 'f' } }] },
      'tools',
    ],
    ['chat/completions', { ...chat, tool_choice: 'auto' }, 'tool_choice'],
    ['chat/completions', { ...chat, response_format: { type: 'json_object' } }, 'response_format'],
    ['chat/completions', { ...chat, functions: [{ name: 'f' }] }, 'functions'],
    ['chat/completions', { ...chat, audio: { voice: 'alloy', format: 'mp3' } }, 'audio'],
    [
      'chat/completions',
      { ...chat, messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'x' }] }] },
      'messages.0.tool_calls',
    ],
    ['chat/completions', { ...chat, some_new_field: 1 }, 'some_new_field'],
    [
      'chat/completions',
      { ...chat, messages: [{ role: 'user', content: 'Hi', x: 1 }] },
      'messages.0.x',
    ],
    ['completions', { ...completion, suffix: ' the end' }, 'suffix'],
    ['completions', { ...completion, best_of: 3 }, 'best_of'],
    ['completions', { ...completion, max_completion_tokens: 3 }, 'max_completion_tokens'],
  ];
  for (const [path, body, param] of refused) {
    const res = await post(path, JSON.stringify(body));
    assert.equal(res.status, 400, `${path} with ${param}`);
    const e = (await res.json()) as ErrorReply;
    assert.equal(e.error.param, param);
    assert.equal(e.error.type, 'invalid_request_error');
    assert.ok(e.error.message.includes(param), e.error.message);
  }
  const accepted: [string, Record<string, unknown>][] = [
    ['chat/completions', { ...chat, user: 'u1', metadata: { a: 'b' }, store: false }],
    ['chat/completions', { ...chat, response_format: { type: 'text' }, tools: null }],
    [
      'chat/completions',
      { ...chat, messages: [{ role: 'developer', content: 'Be brief.' }, ...chat.messages] },
    ],
    ['completions', { ...completion, user: 'u1', best_of: 1, suffix: null }],
  ];
  for (const [path, body] of accepted) {
    const res = await post(path, JSON.stringify(body));
    assert.equal(res.status, 200, `${path} ${JSON.stringify(body)}: ${await res.clone().text()}`);
  }
});
