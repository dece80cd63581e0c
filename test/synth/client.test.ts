import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  LlmClient,
  parseClientConfig,
  parseRetryAfter,
  RequestRejectedError,
} from '../../src/synth/client.ts';
import { callText, DecodingParams } from '../../src/synth/text-call.ts';
import { ConfigError, EndpointError } from '../../src/util/errors.ts';
import { fakeLlm, type ScriptedServer, startScriptedServer } from './scripted-server.ts';

const servers: ScriptedServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});
async function serve(script: Parameters<typeof startScriptedServer>[0]): Promise<ScriptedServer> {
  const s = await startScriptedServer(script);
  servers.push(s);
  return s;
}
const fast = { backoff_initial_ms: 5, backoff_max_ms: 20 };

test('chat and completions round trip; usage and cost are accounted', async () => {
  const s = await serve(fakeLlm);
  const client = new LlmClient({
    endpoints: [{ base_url: s.url }],
    model: 'm',
    prices: { m: { prompt_per_1m: 2, completion_per_1m: 10 } },
  });
  const chat = await client.chat({
    messages: [{ role: 'user', content: 'hello there' }],
    temperature: 0,
  });
  assert.equal(chat.choices[0]!.message.role, 'assistant');
  const comp = await client.complete({ prompt: 'abcd', max_tokens: 5, logprobs: 1, echo: true });
  assert.equal(typeof comp.choices[0]!.text, 'string');
  assert.equal(s.requests[1]!.body.echo, true);
  assert.equal(s.requests[1]!.body.model, 'm');
  const u = client.usage();
  assert.equal(u.network.requests, 2);
  const p = chat.usage!.prompt_tokens + comp.usage!.prompt_tokens;
  const c = chat.usage!.completion_tokens + comp.usage!.completion_tokens;
  assert.equal(u.network.prompt_tokens, p);
  assert.ok(Math.abs(u.network.cost_usd - (p * 2 + c * 10) / 1e6) < 1e-12);
  assert.equal(u.by_model.m!.requests, 2);
});

test('429 with Retry-After is honoured, then the request succeeds', async () => {
  const s = await serve((r) =>
    r.count === 1
      ? { status: 429, headers: { 'retry-after': '1' }, body: { error: 'slow down' } }
      : fakeLlm(r),
  );
  const client = new LlmClient({ endpoints: [{ base_url: s.url }], model: 'm', ...fast });
  const t0 = performance.now();
  await client.complete({ prompt: 'x' });
  const waited = performance.now() - t0;
  assert.ok(waited >= 990, `waited ${waited} ms, Retry-After said 1 s`);
  assert.equal(s.requests.length, 2);
  assert.equal(client.usage().retries, 1);
});

test('500s, a hung connection and truncated JSON are retried until success', async () => {
  const s = await serve((r) => {
    if (r.count === 1) return { status: 500, body: { error: 'boom' } };
    if (r.count === 2) return { status: 503, raw: 'unavailable' };
    if (r.count === 3) return { hang: true };
    if (r.count === 4) return { ...fakeLlm(r), truncate: true };
    if (r.count === 5) return { raw: '{"choices": []}' };
    return fakeLlm(r);
  });
  const client = new LlmClient({
    endpoints: [{ base_url: s.url }],
    model: 'm',
    timeout_ms: 300,
    ...fast,
  });
  const res = await client.complete({ prompt: 'hello' });
  assert.ok(res.choices.length === 1);
  assert.equal(s.requests.length, 6);
  assert.equal(client.usage().retries, 5);
});

test('retries are bounded; client errors are not retried', async () => {
  const down = await serve(() => ({ status: 502, raw: 'bad gateway' }));
  const c1 = new LlmClient({
    endpoints: [{ base_url: down.url }],
    model: 'm',
    max_retries: 2,
    ...fast,
  });
  await assert.rejects(
    () => c1.complete({ prompt: 'x' }),
    (e: unknown) => e instanceof EndpointError && e.status === 502 && /3 attempts/.test(e.message),
  );
  assert.equal(down.requests.length, 3);
  const bad = await serve(() => ({ status: 400, body: { error: { message: 'bad request' } } }));
  const c2 = new LlmClient({ endpoints: [{ base_url: bad.url }], model: 'm', ...fast });
  await assert.rejects(
    () => c2.complete({ prompt: 'x' }),
    (e: unknown) =>
      e instanceof RequestRejectedError &&
      e.status === 400 &&
      e.detail.message === 'bad request' &&
      /HTTP 400: bad request$/.test(e.message),
  );
  assert.equal(bad.requests.length, 1);
});

test('the disk cache answers a repeated request without HTTP; a new seed misses', async () => {
  const s = await serve(fakeLlm);
  const dir = mkdtempSync(join(tmpdir(), 'ik-cache-'));
  const a = new LlmClient({ endpoints: [{ base_url: s.url }], model: 'm', cache_dir: dir });
  const first = await a.complete({ prompt: 'same', temperature: 0.7, seed: 1 });
  const b = new LlmClient({ endpoints: [{ base_url: s.url }], model: 'm', cache_dir: dir });
  const second = await b.complete({ seed: 1, temperature: 0.7, prompt: 'same' });
  assert.deepEqual(second, first);
  assert.equal(b.httpRequests, 0);
  assert.equal(b.usage().cached.requests, 1);
  await b.complete({ prompt: 'same', temperature: 0.7, seed: 2 });
  assert.equal(b.httpRequests, 1);
});

test('weighted fan-out over endpoints, with failover when one is down', async () => {
  const a = await serve(fakeLlm);
  const b = await serve(fakeLlm);
  const client = new LlmClient({
    endpoints: [
      { base_url: a.url, weight: 3 },
      { base_url: b.url, weight: 1 },
    ],
    model: 'm',
    seed: 7,
  });
  await Promise.all(Array.from({ length: 200 }, (_, i) => client.complete({ prompt: `p${i}` })));
  const share = a.requests.length / 200;
  assert.ok(share > 0.65 && share < 0.85, `share to the weight-3 endpoint: ${share}`);
  const dead = await serve(() => ({ status: 500, raw: 'down' }));
  const alive = await serve(fakeLlm);
  const c2 = new LlmClient({
    endpoints: [{ base_url: dead.url }, { base_url: alive.url }],
    model: 'm',
    ...fast,
  });
  await Promise.all(Array.from({ length: 20 }, (_, i) => c2.complete({ prompt: `q${i}` })));
  assert.equal(alive.requests.length, 20);
});

test('the concurrency limit holds', async () => {
  let inFlight = 0;
  let peak = 0;
  const s = await serve(async (r) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await new Promise((res) => setTimeout(res, 20));
    inFlight--;
    return fakeLlm(r);
  });
  const client = new LlmClient({ endpoints: [{ base_url: s.url }], model: 'm', concurrency: 3 });
  await Promise.all(Array.from({ length: 12 }, (_, i) => client.complete({ prompt: `c${i}` })));
  assert.equal(peak, 3);
});

test('the API key comes from the named environment variable', async () => {
  const s = await serve(fakeLlm);
  process.env.IK_TEST_KEY = 'sk-test-123';
  const client = new LlmClient({
    endpoints: [{ base_url: s.url, api_key_env: 'IK_TEST_KEY' }],
    model: 'm',
  });
  await client.complete({ prompt: 'x' });
  assert.equal(s.requests[0]!.headers!.authorization, 'Bearer sk-test-123');
  const missing = new LlmClient({
    endpoints: [{ base_url: s.url, api_key_env: 'IK_TEST_KEY_ABSENT' }],
    model: 'm',
  });
  await assert.rejects(
    () => missing.complete({ prompt: 'x' }),
    (e: unknown) => e instanceof ConfigError && /IK_TEST_KEY_ABSENT/.test(e.message),
  );
  assert.equal(s.requests.length, 1);
});

test('bad configs name the field; Retry-After parses seconds and HTTP dates', () => {
  assert.throws(
    () => parseClientConfig({ endpoints: [{ base_url: 'http://x/v1' }], model: 'm', retries: 3 }),
    (e: unknown) => e instanceof ConfigError && /retries/.test(e.message),
  );
  assert.throws(
    () => parseClientConfig({ endpoints: [{ base_url: 'http://x/v1' }] }),
    (e: unknown) => e instanceof ConfigError && e.field === 'model',
  );
  assert.throws(
    () => parseClientConfig({ endpoints: [{ base_url: 'http://x/v1', weight: 'a' }], model: 'm' }),
    (e: unknown) => e instanceof ConfigError && e.field === 'endpoints.0.weight',
  );
  assert.equal(parseRetryAfter('2'), 2000);
  const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
  assert.equal(parseRetryAfter('Wed, 21 Oct 2026 07:28:03 GMT', now), 3000);
  assert.equal(parseRetryAfter(null), undefined);
});

test('sampling fields reach the server as sent: n, stop, logit_bias, penalties, logprobs', async () => {
  const s = await serve((r) => {
    const reply = fakeLlm(r) as { body: { choices: unknown[] } };
    // Answer with n choices, as a real server does.
    const n = r.body.n ?? 1;
    reply.body.choices = Array.from({ length: n }, (_, i) => ({
      ...(reply.body.choices[0] as object),
      index: i,
    }));
    return reply;
  });
  const client = new LlmClient({ endpoints: [{ base_url: s.url }], model: 'm' });
  const sampling = {
    n: 3,
    temperature: 0.8,
    top_p: 0.9,
    stop: ['\n\n', 'END'],
    max_tokens: 17,
    logit_bias: { '50256': -100, '13': 5 },
    presence_penalty: 1.5,
    frequency_penalty: -0.5,
    seed: 4,
  };
  const comp = await client.complete({ ...sampling, prompt: 'p', logprobs: 2, echo: true });
  assert.equal(comp.choices.length, 3);
  const chat = await client.chat({
    ...sampling,
    messages: [{ role: 'user', content: 'q' }],
    logprobs: true,
    top_logprobs: 4,
  });
  assert.equal(chat.choices.length, 3);
  assert.deepEqual(s.requests[0]!.body, {
    ...sampling,
    prompt: 'p',
    logprobs: 2,
    echo: true,
    model: 'm',
  });
  assert.deepEqual(s.requests[1]!.body, {
    ...sampling,
    messages: [{ role: 'user', content: 'q' }],
    logprobs: true,
    top_logprobs: 4,
    model: 'm',
  });
  // The pipelines' decoding settings take the same path.
  const params = DecodingParams.parse({
    max_tokens: 9,
    temperature: 0.7,
    top_p: 0.5,
    presence_penalty: 2,
    stop: ['\n16'],
    logit_bias: { '7': -100 },
  });
  await callText(client, 'completions', 'list:', params, 11);
  await callText(client, 'chat', 'list:', params, 12);
  for (const [k, r] of [s.requests[2]!, s.requests[3]!].entries()) {
    const { prompt: _p, messages: _m, ...rest } = r.body;
    assert.deepEqual(rest, {
      model: 'm',
      max_tokens: 9,
      temperature: 0.7,
      top_p: 0.5,
      presence_penalty: 2,
      frequency_penalty: 0,
      stop: ['\n16'],
      logit_bias: { '7': -100 },
      seed: 11 + k,
    });
  }
  assert.equal(s.requests[2]!.body.prompt, 'list:');
  assert.deepEqual(s.requests[3]!.body.messages, [{ role: 'user', content: 'list:' }]);
});
