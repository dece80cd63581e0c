// `instructkit pretrain`: a tiny text file, a few steps, and a model directory that loads; from
// the built-in tiny shape (--init-tiny, tokenizer trained on the text) or from a model directory.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { saveCheckpoint } from '../../src/models/checkpoint.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../../src/models/tiny.ts';
import { repoRoot } from '../helpers/shared.ts';

const cli = (args: string[]) =>
  spawnSync(process.execPath, [join(repoRoot, 'bin', 'instructkit.js'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
  });

const lines = Array.from(
  { length: 40 },
  (_, i) =>
    `The ${['river', 'hill', 'lake', 'road'][i % 4]} of town ${i} is ${['long', 'short'][i % 2]}.`,
);
const common = [
  '--max-steps',
  '3',
  '--per-device-train-batch-size',
  '4',
  '--max-length',
  '32',
  '--logging-steps',
  '1',
  '--disable-tqdm',
  '--use-worker',
  'false',
];

test('`instructkit pretrain --init-tiny`: text file to a loadable built-in tiny checkpoint', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-pretrain-'));
  const text = join(dir, 'knowledge.txt');
  writeFileSync(text, `${lines.join('\n')}\n`);
  const out = join(dir, 'base');
  const r = cli([
    'pretrain',
    '--init-tiny',
    '--vocab-size',
    '320',
    '--train-file',
    text,
    '--output-dir',
    out,
    ...common,
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^pretrain: 3 steps, final loss \d+\.\d{4}; model written to /);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'metrics.jsonl'])
    assert.ok(existsSync(join(out, f)), f);
  const cfg = JSON.parse(readFileSync(join(out, 'sft_config.json'), 'utf8'));
  assert.equal(cfg.completion_only_loss, false, 'pretraining puts every token in the loss');
  assert.equal(cfg.packing, true);
  const logs = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
  assert.equal(logs.length, 3);

  const lm = await CausalLM.load(out);
  const tiny = tinyLlamaConfig({ vocabSize: 320 });
  assert.equal(lm.spec.hiddenSize, tiny.hiddenSize);
  assert.equal(lm.spec.numLayers, tiny.numLayers);
  assert.equal(lm.spec.vocabSize, 320);
  const ids = lm.tokenizer!.encode(lines[5]!, { addSpecialTokens: false });
  assert.equal(lm.tokenizer!.decode(ids), lines[5], 'the tokenizer was trained on the text');
  const logits = await lm.logits(ids);
  assert.ok(logits.data.every(Number.isFinite));
  // It trained: the weights moved away from the seeded initialisation of the same shape.
  const { tokenizer } = trainTinyTokenizer(lines, 320);
  const init = CausalLM.random(lm.spec, cfg.seed, tokenizer);
  const name = 'model.layers.0.self_attn.q_proj.weight';
  assert.notDeepEqual(lm.weights.get(name)!.data, init.weights.get(name)!.data);
});

test('`instructkit pretrain` from a model directory, and --init-tiny with a model is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-pretrain-dir-'));
  const text = join(dir, 'text.txt');
  writeFileSync(text, `${lines.join('\n')}\n`);
  const { tokenizer } = trainTinyTokenizer(lines, 300);
  const spec = tinyLlamaConfig({
    vocabSize: 300,
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
    },
  });
  const start = CausalLM.random(spec, 7, tokenizer);
  const model = join(dir, 'start');
  await saveCheckpoint(model, {
    spec,
    tensors: start.weights,
    tokenizer,
    generationConfig: null,
  });
  const out = join(dir, 'out');
  const r = cli([
    'pretrain',
    '--model-name-or-path',
    model,
    '--train-file',
    text,
    '--output-dir',
    out,
    ...common,
  ]);
  assert.equal(r.status, 0, r.stderr);
  const lm = await CausalLM.load(out);
  assert.equal(lm.spec.hiddenSize, 32);
  const name = 'model.embed_tokens.weight';
  assert.notDeepEqual(lm.weights.get(name)!.data, start.weights.get(name)!.data);

  const both = cli([
    'pretrain',
    '--init-tiny',
    '--model-name-or-path',
    model,
    '--train-file',
    text,
    '--output-dir',
    join(dir, 'x'),
  ]);
  assert.equal(both.status, 1);
  assert.match(both.stderr, /field 'model_name_or_path': give --init-tiny or a model_name_or_path/);
});
