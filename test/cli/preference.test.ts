// `instructkit data preferences`, `instructkit dpo` and `instructkit orpo`: collection
// preferences written as TRL records, then DPO (LoRA, cached reference) and ORPO on a tiny
// model directory from the CLI; a config with an unknown key is refused naming it.
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

test('`data preferences` then `dpo` and `orpo` from the CLI', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-cli-pref-'));
  const prefs = join(dir, 'prefs.jsonl');
  const d = cli([
    'data',
    'preferences',
    '--out',
    prefs,
    '--categories',
    'sequences',
    '--seed',
    '1',
  ]);
  assert.equal(d.status, 0, d.stderr);
  assert.match(d.stdout, /wrote \d+ pairs/);
  const rows = readFileSync(prefs, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.ok(rows.length > 20);
  assert.deepEqual(Object.keys(rows[0]), ['prompt', 'chosen', 'rejected']);
  const text = rows
    .slice(0, 40)
    .map((x: { prompt: string; chosen: string }) => x.prompt + x.chosen);
  const { tokenizer } = trainTinyTokenizer(text, 300);
  const spec = tinyLlamaConfig({
    vocabSize: 300,
    eosTokenId: tokenizer.eos!.id,
    padTokenId: tokenizer.pad!.id,
    maxPositions: 96,
    shape: {
      hiddenSize: 32,
      intermediateSize: 64,
      numLayers: 1,
      numHeads: 2,
      numKvHeads: 1,
      headDim: 16,
    },
  });
  const base = join(dir, 'base');
  await saveCheckpoint(base, {
    spec,
    tensors: CausalLM.random(spec, 2).weights,
    tokenizer,
    generationConfig: null,
  });
  const small = join(dir, 'small.jsonl');
  writeFileSync(
    small,
    `${readFileSync(prefs, 'utf8').trim().split('\n').slice(0, 16).join('\n')}\n`,
  );
  const common = [
    '--model-name-or-path',
    base,
    '--train-file',
    small,
    '--max-steps',
    '2',
    '--per-device-train-batch-size',
    '8',
    '--max-length',
    '96',
    '--logging-steps',
    '1',
    '--disable-tqdm',
    '--use-worker',
    'false',
  ];
  const out = join(dir, 'dpo');
  const p = cli([
    'dpo',
    ...common,
    '--output-dir',
    out,
    '--use-peft',
    '--lora-r',
    '4',
    '--precompute-ref-log-probs',
    '--loss-type',
    'sigmoid,sft',
    '--loss-weights',
    '1,0.1',
  ]);
  assert.equal(p.status, 0, p.stderr);
  assert.match(p.stdout, /dpo: 2 steps on 16 pairs \(reference: cached, wrote .*ref_logps/);
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')));
  const logged = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(logged.length, 2);
  for (const k of [
    'rewards/chosen',
    'rewards/rejected',
    'rewards/accuracies',
    'rewards/margins',
    'logps/chosen',
    'logps/rejected',
  ])
    assert.ok(Number.isFinite(logged[0][k]), k);
  const saved = JSON.parse(readFileSync(join(out, 'dpo_config.json'), 'utf8'));
  assert.deepEqual(saved.loss_type, ['sigmoid', 'sft']);

  const o = cli(['orpo', ...common, '--output-dir', join(dir, 'orpo')]);
  assert.equal(o.status, 0, o.stderr);
  assert.match(o.stdout, /orpo: 2 steps on 16 pairs \(reference: none\)/);
  assert.ok(existsSync(join(dir, 'orpo', 'model.safetensors')));

  const yaml = join(dir, 'bad.yaml');
  writeFileSync(yaml, 'beta: 0.2\nref_model_mixup: 0.5\n');
  const bad = cli(['dpo', ...common, '--output-dir', join(dir, 'bad'), '--config', yaml]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /ref_model_mixup/);
});

test('`data preferences` refuses an unknown --rejected kind by name and writes nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-cli-pref-bad-'));
  const out = join(dir, 'prefs.jsonl');
  const r = cli(['data', 'preferences', '--out', out, '--rejected', 'near_miss,bogus']);
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stderr, /bogus/);
  assert.match(r.stderr, /rejected/);
  assert.equal(existsSync(out), false);
});
