// The app's error handling and API-key check, on a test double of the engine (the behaviour
// under test is the HTTP layer's): a ConfigError's field becomes `param`, an unexpected error
// answers 500 with a generic message and the request id (also in x-request-id) while the
// details go to the log only, every reply carries a request id, and the API key is compared
// with crypto.timingSafeEqual over equal-length digests.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { mock, test } from 'node:test';
import { createApp } from '../../src/serve/app.ts';
import type { Completion, InferenceEngine } from '../../src/serve/engine.ts';
import type { ServeLogEntry } from '../../src/serve/errors.ts';
import { countPrompts } from '../../src/serve/prescan.ts';
import { ConfigError } from '../../src/util/errors.ts';

/** An engine double: prompt 'boom' fails unexpectedly, 'config' with a ConfigError. */
function fakeEngine(): InferenceEngine {
  const done: Completion = {
    text: ' ok',
    tokens: [],
    finish: 'stop',
    promptTokens: 1,
    completionTokens: 1,
  };
  return {
    info: { modelType: 'llama', maxPositions: 64, chatTemplate: null, bos: null, eos: null },
    maxConcurrent: 4,
    inFlight: 0,
    finished: [],
    countTokens: async (prompts: string[]) => ({
      tokens: prompts.map((p) => p.length),
      atLeast: false,
    }),
    generate: async (prompt: string) => {
      if (prompt === 'boom') throw new Error('ENOENT: /secret/model/dir/weights.bin is gone');
      if (prompt === 'config')
        throw new ConfigError('must be at most 4 strings', { field: 'stop' });
      return done;
    },
  } as unknown as InferenceEngine;
}

const completion = (prompt: string) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ model: 'm', prompt, max_tokens: 2 }),
});

test('an unexpected error: 500, generic message with the request id, details in the log only', async () => {
  const logged: ServeLogEntry[] = [];
  const app = createApp(fakeEngine(), { modelName: 'm', log: (e) => logged.push(e) });
  const res = await app.request('/v1/completions', completion('boom'));
  assert.equal(res.status, 500);
  const id = res.headers.get('x-request-id');
  assert.match(id ?? '', /^req_[0-9a-f]{24}$/);
  const text = await res.text();
  assert.doesNotMatch(text, /secret|ENOENT/);
  const body = JSON.parse(text) as { error: Record<string, unknown> };
  assert.equal(body.error.type, 'server_error');
  assert.ok((body.error.message as string).includes(id!));
  assert.equal(logged.length, 1);
  assert.equal(logged[0]!.requestId, id);
  assert.equal(logged[0]!.path, '/v1/completions');
  assert.match(logged[0]!.message, /secret\/model\/dir/);
  assert.ok(logged[0]!.stack);
  // Every reply has its own id; answered errors are not logged.
  const ok = await app.request('/v1/completions', completion('hello'));
  assert.equal(ok.status, 200);
  const okId = ok.headers.get('x-request-id');
  assert.match(okId ?? '', /^req_/);
  assert.notEqual(okId, id);
  assert.equal(logged.length, 1);
});

test("a ConfigError's field becomes the error's param (400)", async () => {
  const logged: ServeLogEntry[] = [];
  const app = createApp(fakeEngine(), { modelName: 'm', log: (e) => logged.push(e) });
  const res = await app.request('/v1/completions', completion('config'));
  assert.equal(res.status, 400);
  const body = (await res.json()) as { error: Record<string, unknown> };
  assert.equal(body.error.param, 'stop');
  assert.equal(body.error.type, 'invalid_request_error');
  assert.match(body.error.message as string, /field 'stop': must be at most 4 strings/);
  assert.equal(logged.length, 0);
});

test('the API key is compared with timingSafeEqual over equal-length digests', async () => {
  const calls: [Buffer, Buffer][] = [];
  const real = crypto.timingSafeEqual;
  const spy = mock.method(crypto, 'timingSafeEqual', (a: Buffer, b: Buffer) => {
    calls.push([a, b]);
    return real(a, b);
  });
  syncBuiltinESMExports();
  try {
    const app = createApp(fakeEngine(), { modelName: 'm', apiKey: 'sk-secret-key' });
    for (const authorization of ['Bearer sk-secret-kex', 'Bearer x', '']) {
      const res = await app.request('/v1/models', { headers: { authorization } });
      assert.equal(res.status, 401);
    }
    const ok = await app.request('/v1/models', {
      headers: { authorization: 'Bearer sk-secret-key' },
    });
    assert.equal(ok.status, 200);
    assert.equal(calls.length, 4);
    for (const [a, b] of calls) assert.equal(a.length, b.length);
  } finally {
    spy.mock.restore();
    syncBuiltinESMExports();
  }
});

test('the prompt scan counts a top-level prompt array of strings, and is unsure of anything else', () => {
  const many = JSON.stringify({ model: 'm', prompt: Array(100).fill('a"b\\'), n: 2 });
  assert.equal(countPrompts(many, 10), 11, 'stops once past the limit');
  assert.equal(countPrompts(many, 1000), 100);
  const pretty = JSON.stringify(
    { model: 'm', stop: ['x', { a: '[' }], prompt: ['a', 'b'] },
    null,
    2,
  );
  assert.equal(countPrompts(pretty, 10), 2);
  assert.equal(countPrompts('{"prompt": []}', 10), 0);
  // Unsure: a single prompt, token ids, an escaped key, bad JSON, no prompt at all.
  for (const text of [
    '{"prompt": "one"}',
    '{"prompt": [1, 2, 3]}',
    '{"pr\\u006fmpt": ["a", "b"]}',
    '{"model": "m" "prompt": ["a"]}',
    '{"prompt": ["a", ',
    '{"model": "m"}',
    '[]',
  ])
    assert.equal(countPrompts(text, 10), null, text);
});
