// LoRA end to end on an HF-format directory: a tiny LLaMA saved with saveCheckpoint (random
// init) is fine-tuned with use_peft; the adapter is a no-op before training, only adapter
// weights move, it saves in PEFT format, merges into the base with identical logits, and the
// merged model exports to GGUF that llama.cpp runs with the same greedy continuation.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadCheckpoint, saveCheckpoint } from '../../src/models/checkpoint.ts';
import { parseHfConfig } from '../../src/models/config.ts';
import { generate, lastLogits } from '../../src/models/generate.ts';
import { exportGguf } from '../../src/models/gguf-export.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { loadPeftAdapter, mergeLora } from '../../src/models/peft.ts';
import { trainTinyTokenizer } from '../../src/models/tiny.ts';
import { parseSftConfig, trainSft } from '../../src/train/sft.ts';
import { llama, llamaCppGreedy } from '../helpers/llamacpp.ts';

const texts = Array.from(
  { length: 80 },
  (_, i) => `Item ${i} is ${['red', 'blue', 'green', 'pink'][i % 4]} and weighs ${i % 9} grams.`,
);
const { tokenizer } = trainTinyTokenizer(texts, 320);
const spec = parseHfConfig({
  model_type: 'llama',
  vocab_size: 320,
  hidden_size: 48,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  initializer_range: 0.1,
  eos_token_id: tokenizer.eos!.id,
  pad_token_id: tokenizer.pad!.id,
});
const pairs = texts.map((t) => ({
  prompt: `${t.split(' is ')[0]} colour?\nAnswer:`,
  completion: ` ${t.split(' is ')[1]!.split(' ')[0]}`,
}));

test('LoRA on an HF directory: no-op at init, PEFT files, merge, GGUF in llama.cpp', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-lora-'));
  const base = join(dir, 'base');
  await saveCheckpoint(base, {
    spec,
    tensors: CausalLM.random(spec, 4).weights,
    tokenizer,
    generationConfig: null,
  });
  const probe = tokenizer.encode('Item 3 colour?\nAnswer:');

  // A fresh adapter is an exact no-op (B = 0).
  const plain = await CausalLM.load(base);
  const adapted = await CausalLM.load(base);
  adapted.attachLora(
    {
      r: 4,
      alpha: 8,
      dropout: 0,
      targets: new Set(['q_proj', 'v_proj', 'down_proj']),
      rslora: false,
    },
    1,
  );
  assert.deepEqual(await lastLogits(adapted, probe), await lastLogits(plain, probe));

  const out = join(dir, 'adapter');
  const r = await trainSft(
    parseSftConfig({
      model_name_or_path: base,
      train_file: '(memory)',
      output_dir: out,
      use_peft: true,
      lora_r: 4,
      lora_alpha: 8,
      lora_dropout: 0.1,
      lora_target_modules: ['q_proj', 'v_proj', 'down_proj'],
      learning_rate: 1e-2,
      max_steps: 25,
      per_device_train_batch_size: 8,
      max_length: 64,
      packing: true,
      disable_tqdm: true,
      use_worker: false,
    }),
    { train: pairs },
  );
  assert.ok(r.logs.at(-1)!.loss < r.logs[0]!.loss);
  // Base weights frozen; the adapter moved.
  for (const [n, t] of r.model.weights)
    assert.deepEqual(t.data, plain.weights.get(n)!.data, `${n} is frozen`);
  assert.ok(
    [...r.model.lora!.tensors].some(
      ([n, t]) => n.includes('lora_B') && t.data.some((v) => v !== 0),
    ),
  );

  // PEFT format on disk.
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.r, 4);
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')));
  const adapter = await loadPeftAdapter(out);
  assert.ok(adapter.modules.has('model.layers.0.self_attn.q_proj'));

  // Merged weights give the adapter model's logits.
  const merged = new CausalLM(
    spec,
    mergeLora((await loadCheckpoint(base)).tensors, adapter),
    tokenizer,
  );
  const a = await lastLogits(r.model, probe);
  const m = await lastLogits(merged, probe);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i]! - m[i]!) < 1e-4, `logit ${i}: ${a[i]} vs ${m[i]}`);

  // The merged model runs in llama.cpp with the same greedy continuation.
  const gguf = join(dir, 'merged.gguf');
  await exportGguf(gguf, spec, merged.weights, { tokenizer, fileType: 'f32' });
  const model = await (await llama()).loadModel({ modelPath: gguf });
  try {
    const [ours] = await generate(merged, [probe], { max_new_tokens: 5, stop_token_ids: [] });
    assert.deepEqual(await llamaCppGreedy(model, probe, spec.vocabSize, 5), ours!.tokens);
  } finally {
    await model.dispose();
  }
});

test('a model saved in HF format loads back with identical logits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-roundtrip-'));
  const lm = CausalLM.random(spec, 9, tokenizer);
  await saveCheckpoint(dir, { spec, tensors: lm.weights, tokenizer, generationConfig: null });
  const back = await CausalLM.load(dir);
  const ids = tokenizer.encode('Item 7 is blue');
  assert.deepEqual(await lastLogits(back, ids), await lastLogits(lm, ids));
  assert.deepEqual(back.tokenizer!.encode('Item 7 is blue'), ids);
});
