// Self-Instruct and Alpaca against instructkit's own OpenAI-compatible server (startServer) on
// loopback, with a tiny model trained here for a few steps on the seed instructions: the text
// is junk, but every request takes the real HTTP path (completions and chat), responses parse,
// filters reject with reasons, state files are written, and a re-run is answered from the cache.
// Defaults that cannot fit the model's context stop the run with an error naming the setting.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { saveCheckpoint } from '../../src/models/checkpoint.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../../src/models/tiny.ts';
import { type RunningServer, startServer } from '../../src/serve/listen.ts';
import { runAlpaca } from '../../src/synth/alpaca.ts';
import { LlmClient } from '../../src/synth/client.ts';
import { runSelfInstruct } from '../../src/synth/self-instruct.ts';
import { parseSftConfig, trainSft } from '../../src/train/sft.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { ifShared, noShared, sharedData } from '../helpers/shared.ts';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), `ik-own-${p}-`));
const lines = (path: string): unknown[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));

interface SeedTask {
  instruction: string;
  instances: { input: string; output: string }[];
}
// The Self-Instruct seeds from ../shared/data train the model and seed the runs: every test here
// skips without them.
const allSeeds = ifShared(
  () => lines(sharedData('self-instruct', 'seed_tasks.jsonl')) as SeedTask[],
  [],
);
// Seed tasks with short instances, so that every prompt (Alpaca shows three instances) fits the
// tiny model's context of 1024 tokens with room for the completion.
const shortSeeds = allSeeds.filter(
  (s) => s.instruction.length + s.instances[0]!.input.length + s.instances[0]!.output.length < 250,
);
const CONTEXT = 1024;
let server: RunningServer;
let seedFile: string;

before(async () => {
  if (noShared) return;
  const dir = tmp('model');
  seedFile = join(dir, 'seed_tasks.jsonl');
  writeFileSync(seedFile, shortSeeds.map((s) => JSON.stringify(s)).join('\n'));
  const { tokenizer } = trainTinyTokenizer(
    allSeeds.flatMap((s) => [s.instruction, ...s.instances.map((i) => `${i.input} ${i.output}`)]),
    1024,
  );
  const spec = tinyLlamaConfig({
    vocabSize: 1024,
    eosTokenId: tokenizer.eos!.id,
    padTokenId: tokenizer.pad!.id,
    maxPositions: CONTEXT,
    shape: {
      hiddenSize: 64,
      intermediateSize: 128,
      numLayers: 2,
      numHeads: 2,
      numKvHeads: 1,
      headDim: 32,
    },
  });
  // A few steps on the instructions, each ending in EOS, so that completions end by themselves
  // (a random model almost never emits EOS, and every response would be cut at max_tokens).
  const trained = await trainSft(
    parseSftConfig({
      model_name_or_path: 'in-memory',
      train_file: 'in-memory',
      output_dir: join(dir, 'train'),
      completion_only_loss: false,
      max_steps: 40,
      learning_rate: 5e-3,
      max_length: 64,
      per_device_train_batch_size: 16,
      packing: true,
      disable_tqdm: true,
      use_worker: false,
    }),
    {
      model: CausalLM.random(spec, 7, tokenizer),
      train: allSeeds.map((s) => ({ text: s.instruction })),
    },
  );
  const modelDir = join(dir, 'model');
  await saveCheckpoint(modelDir, {
    spec: trained.model.spec,
    tensors: trained.model.weights,
    tokenizer,
    generationConfig: null,
  });
  server = await startServer({ model: modelDir, port: 0, modelName: 'tiny' });
});
after(async () => {
  await server?.close();
});

const client = (cacheDir?: string): LlmClient =>
  new LlmClient({
    endpoints: [{ base_url: server.url }],
    model: 'tiny',
    max_retries: 1,
    backoff_initial_ms: 5,
    ...(cacheDir ? { cache_dir: cacheDir } : {}),
  });

const INSTRUCTION_REASONS = new Set([
  'truncated_response',
  'empty',
  'too_short',
  'too_long',
  'blacklisted',
  'write_a_program',
  'starts_with_punctuation',
  'starts_with_non_ascii',
  'too_similar',
]);

test('Self-Instruct against instructkit serve: requests, parsing, reject reasons, state files, cache', {
  skip: noShared,
}, async () => {
  const cache = tmp('si-cache');
  const cfg = {
    seed_tasks: seedFile,
    target: 3,
    seed: 1,
    request_batch_size: 3,
    stall_rounds: 3,
    decoding: {
      instructions: { max_tokens: 48, temperature: 1, top_p: 0.9, stop: ['\n\n', '\n16'] },
      instances: { max_tokens: 64, temperature: 0, stop: ['Example 6', 'Task:'] },
    },
  };
  const out = tmp('si');
  const c1 = client(cache);
  const report = await runSelfInstruct({ ...cfg, out_dir: out }, { client: c1 });

  const log = lines(join(out, 'instructions.jsonl')) as {
    finish_reason: string;
    candidates: { instruction: string; kept: boolean; reason?: string }[];
  }[];
  assert.equal(log.length, report.rounds * cfg.request_batch_size, 'one log line per request');
  assert.ok(log.every((e) => e.finish_reason === 'stop' || e.finish_reason === 'length'));
  const candidates = log.flatMap((e) => e.candidates);
  const rejected = candidates.filter((x) => !x.kept);
  assert.ok(rejected.length > 0, 'junk text is rejected');
  assert.ok(rejected.every((x) => INSTRUCTION_REASONS.has(x.reason ?? '')));
  const counted = Object.values(report.rejected_instructions).reduce((a, b) => a + b, 0);
  assert.equal(counted, rejected.length, 'the report counts every rejected candidate');
  // The run reaches the later stages: kept instructions are classified and get instances.
  assert.ok(report.instructions > 0, 'some junk passes the heuristics');
  const clf = lines(join(out, 'classification.jsonl')) as { raw: string }[];
  assert.equal(clf.length, report.instructions);
  const inst = lines(join(out, 'instances.jsonl')) as { rejected: Record<string, number> }[];
  assert.equal(inst.length, report.instructions);
  assert.equal(lines(join(out, 'data.jsonl')).length, report.records);
  assert.deepEqual(
    JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')).rounds,
    report.rounds,
  );
  const used = c1.usage();
  assert.equal(used.network.requests, log.length + 2 * report.instructions);
  assert.ok(used.network.prompt_tokens > used.network.requests * 100, 'usage from the server');

  // Same config, fresh output directory, same cache: every answer comes from the cache.
  const c2 = client(cache);
  const out2 = tmp('si-again');
  await runSelfInstruct({ ...cfg, out_dir: out2 }, { client: c2 });
  assert.equal(c2.httpRequests, 0);
  assert.equal(c2.usage().cached.requests, used.network.requests);
  for (const f of ['instructions.jsonl', 'classification.jsonl', 'data.jsonl'])
    assert.equal(readFileSync(join(out2, f), 'utf8'), readFileSync(join(out, f), 'utf8'), f);
});

test('Alpaca against instructkit serve over the chat API: reasons, state, cache', {
  skip: noShared,
}, async () => {
  const cache = tmp('alpaca-cache');
  const cfg = {
    seed_tasks: seedFile,
    target: 2,
    seed: 2,
    api: 'chat' as const,
    request_batch_size: 2,
    stall_rounds: 2,
    decoding: { max_tokens: 96, temperature: 1, top_p: 1, stop: ['\n20', '20.'] },
  };
  const out = tmp('alpaca');
  const c1 = client(cache);
  const report = await runAlpaca({ ...cfg, out_dir: out }, { client: c1 });
  const log = lines(join(out, 'generations.jsonl')) as {
    unparseable: number;
    candidates: { kept: boolean; reason?: string }[];
  }[];
  assert.equal(log.length, report.rounds * cfg.request_batch_size);
  assert.equal(c1.usage().network.requests, log.length);
  const reasons = Object.keys(report.rejected);
  assert.ok(reasons.length > 0, 'junk is rejected');
  const unparseable = log.reduce((s, e) => s + e.unparseable, 0);
  assert.equal(report.rejected.unparseable ?? 0, unparseable);
  assert.equal(lines(join(out, 'data.jsonl')).length, report.records);

  const c2 = client(cache);
  const out2 = tmp('alpaca-again');
  await runAlpaca({ ...cfg, out_dir: out2 }, { client: c2 });
  assert.equal(c2.httpRequests, 0);
  assert.equal(
    readFileSync(join(out2, 'generations.jsonl'), 'utf8'),
    readFileSync(join(out, 'generations.jsonl'), 'utf8'),
  );
});

test('defaults that cannot fit the model stop the run at once, naming the setting', {
  skip: noShared,
}, async () => {
  // Self-Instruct asks for 1024 new tokens: with any prompt that exceeds the 1024-token context.
  const c1 = client();
  await assert.rejects(
    runSelfInstruct(
      { seed_tasks: seedFile, out_dir: tmp('si-default'), target: 5 },
      { client: c1 },
    ),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.field === 'decoding.instructions.max_tokens' &&
      /maximum context length is 1024/.test(e.message) &&
      /hint: set decoding\.instructions\.max_tokens lower/.test(e.message),
  );
  assert.ok(c1.httpRequests <= 5, `${c1.httpRequests} requests: no retries, no further rounds`);
  // Alpaca's 3072 is over the server's max_tokens limit (1024 by default).
  const c2 = client();
  await assert.rejects(
    runAlpaca({ seed_tasks: seedFile, out_dir: tmp('alpaca-default'), target: 5 }, { client: c2 }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.field === 'decoding.max_tokens' &&
      /at most 1024/.test(e.message),
  );
  assert.ok(c2.httpRequests <= 5);
});
