// Server request bodies: POSTs to /v1/completions and /v1/chat/completions through createApp's
// handler in-process (app.request, no sockets), on a tiny random model saved to the scratch
// folder. A 5xx answer is a crash (the server caught something it did not expect); every
// answer's body is read to the end, streams included.
import { join } from 'node:path';
import type { Hono } from 'hono';
import { saveCheckpoint } from '../../src/models/checkpoint.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { tinyLlamaConfig } from '../../src/models/tiny.ts';
import { createApp } from '../../src/serve/app.ts';
import { InferenceEngine } from '../../src/serve/engine.ts';
import { type Target, tinyTok } from './targets.ts';

const enc = new TextEncoder();

/** An unexpected server answer: status >= 500. */
export class ServerCrash extends Error {}

let engine: InferenceEngine | undefined;
let app: Hono | undefined;

const completion = {
  model: 'tiny',
  prompt: 'Hello number 4',
  max_tokens: 3,
  temperature: 0.7,
  top_p: 0.9,
  n: 2,
  stop: ['\n'],
  logprobs: 2,
  echo: true,
  seed: 1,
};
const chatBody = {
  model: 'tiny',
  messages: [
    { role: 'system', content: 'Be terse.' },
    { role: 'user', content: 'Hello 😀' },
  ],
  max_tokens: 2,
  stream: true,
  stream_options: { include_usage: true },
  logprobs: true,
  top_logprobs: 2,
  logit_bias: { '5': -100 },
  seed: 3,
};

export const serveTarget: Target = {
  name: 'serve',
  shape: 'json',
  dictionary: [
    '"model"',
    '"tiny"',
    '"prompt"',
    '"messages"',
    '"max_tokens"',
    '"stream"',
    '"n"',
    '"logprobs"',
    '"echo"',
    '"stop"',
    '"logit_bias"',
    '"tools"',
    '"path"',
    '"/v1/chat/completions"',
    '"/v1/completions"',
  ],
  async seeds() {
    // {path, body}: the path picks the endpoint; the body is sent as JSON text.
    return [
      { path: '/v1/completions', body: completion },
      {
        path: '/v1/completions',
        body: { ...completion, prompt: ['a', 'b'], stream: true, echo: false },
      },
      { path: '/v1/chat/completions', body: chatBody },
      { path: '/v1/chat/completions', body: { ...chatBody, stream: false, n: 3 } },
    ].map((x) => enc.encode(JSON.stringify(x)));
  },
  async setup(ctx) {
    const { tokenizer } = { tokenizer: tinyTok() };
    const spec = tinyLlamaConfig({
      vocabSize: tokenizer.vocabSize,
      eosTokenId: tokenizer.eos!.id,
      padTokenId: tokenizer.pad!.id,
      maxPositions: 64,
      shape: {
        hiddenSize: 32,
        intermediateSize: 64,
        numLayers: 1,
        numHeads: 2,
        numKvHeads: 1,
        headDim: 16,
        initializerRange: 0.2,
      },
    });
    const lm = CausalLM.random(spec, 7, tokenizer);
    const dir = join(ctx.dir, 'model');
    await saveCheckpoint(dir, {
      spec: lm.spec,
      tensors: lm.weights,
      tokenizer,
      generationConfig: null,
    });
    engine = await InferenceEngine.start({ model: dir, maxConcurrent: 64 });
    app = createApp(engine, { modelName: 'tiny', maxTokens: 4, maxBodyBytes: 200_000 });
  },
  async teardown() {
    await engine?.close();
    engine = undefined;
    app = undefined;
  },
  async run(input) {
    const s = new TextDecoder().decode(input);
    // The framing {path, body} is the harness's; when it no longer parses, the raw text is the
    // body of a completions request (malformed JSON is the server's to reject).
    let path = '/v1/completions';
    let body = s;
    try {
      const doc = JSON.parse(s) as { path?: unknown; body?: unknown };
      if (doc !== null && typeof doc === 'object') {
        if (doc.path === '/v1/chat/completions') path = doc.path;
        body = JSON.stringify(doc.body) ?? '';
      }
    } catch {
      // keep raw
    }
    const res = await app!.request(path, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    const out = await res.text();
    if (res.status >= 500)
      throw new ServerCrash(`HTTP ${res.status} for ${path}: ${out.slice(0, 300)}`);
  },
};
