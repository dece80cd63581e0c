import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadCheckpoint, openCheckpoint, saveCheckpoint } from '../../src/models/checkpoint.ts';
import { hfConfigFromSpec, parseHfConfig } from '../../src/models/config.ts';
import { bf16BitsToF32, f32ToBf16Bits } from '../../src/models/half.ts';
import { writeSafetensors } from '../../src/models/safetensors.ts';
import { type TensorMap, tensorMapsEqual } from '../../src/models/tensor.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../../src/models/tiny.ts';
import { expectedTensors } from '../../src/models/weights.ts';
import { ConfigError, FormatError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { randomLlamaWeights, referenceLogits } from './reference-llama.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-ckpt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const small = (extra: Record<string, unknown> = {}) =>
  parseHfConfig({
    model_type: 'llama',
    vocab_size: 300,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    bos_token_id: null,
    eos_token_id: 2,
    pad_token_id: 3,
    ...extra,
  });

const corpus = ['the cat sat on the mat', 'a dog ran in the park', 'the the the cat cat'];

describe('HF checkpoint directory', () => {
  test('save → load: identical tensors, spec, tokenizer and logits', async () => {
    const spec = small();
    const tensors = randomLlamaWeights(spec, 1);
    const { tokenizer } = trainTinyTokenizer(corpus, 300);
    const d = join(dir, 'tiny');
    await saveCheckpoint(d, { spec, tensors, tokenizer, generationConfig: null });
    assert.deepEqual(readdirSync(d).sort(), [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    const config = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    assert.equal(config.architectures[0], 'LlamaForCausalLM');
    assert.equal(config.torch_dtype, 'float32');
    assert.deepEqual(JSON.parse(readFileSync(join(d, 'generation_config.json'), 'utf8')), {
      _from_model_config: true,
      eos_token_id: 2,
      pad_token_id: 3,
    });
    const back = await loadCheckpoint(d);
    assert.ok(tensorMapsEqual(back.tensors, tensors));
    assert.deepEqual(back.spec, { ...spec, torchDtype: 'float32' });
    const text = '<|im_start|>user\nthe cat<|im_end|>';
    assert.deepEqual(back.tokenizer?.encode(text), tokenizer.encode(text));
    assert.equal(back.tokenizer?.chatTemplate, tokenizer.chatTemplate);
    const ids = tokenizer.encode('the cat sat');
    assert.deepEqual(
      referenceLogits(back.spec, back.tensors, ids),
      referenceLogits(spec, tensors, ids),
    );
  });

  test('sharded and bf16 directories load; bf16 gives the rounded weights', async () => {
    const spec = small({ tie_word_embeddings: true });
    const tensors = randomLlamaWeights(spec, 2);
    const d = join(dir, 'sharded');
    await saveCheckpoint(
      d,
      { spec, tensors, tokenizer: null, generationConfig: { do_sample: false, max_new_tokens: 8 } },
      { maxShardBytes: 20_000, dtype: 'BF16' },
    );
    const files = readdirSync(d);
    assert.ok(files.includes('model.safetensors.index.json'));
    assert.ok(files.filter((f) => f.endsWith('.safetensors')).length >= 3);
    const c = await openCheckpoint(d);
    assert.equal(c.spec.torchDtype, 'bfloat16');
    assert.equal(c.tokenizer, null);
    assert.deepEqual(c.generationConfig, { do_sample: false, max_new_tokens: 8 });
    const back = await c.readAll();
    await c.close();
    const w = tensors.get('model.layers.1.mlp.down_proj.weight')!.data;
    const r = back.get('model.layers.1.mlp.down_proj.weight')!.data;
    for (let i = 0; i < w.length; i++) assert.equal(r[i], bf16BitsToF32(f32ToBf16Bits(w[i])));
  });

  test('the built-in tiny model saves and loads (3.5 M parameters, 4 layers)', async () => {
    const spec = tinyLlamaConfig({ eosTokenId: 2, padTokenId: 3 });
    const tensors = randomLlamaWeights(spec, 3, 0.02);
    const d = join(dir, 'builtin');
    await saveCheckpoint(d, { spec, tensors, tokenizer: null, generationConfig: null });
    const back = await loadCheckpoint(d);
    assert.ok(tensorMapsEqual(back.tensors, tensors));
    assert.equal(
      [...back.tensors.values()].reduce((a, t) => a + t.data.length, 0),
      3_475_712,
    );
  });

  test('GPT-2 files saved without the transformer. prefix are normalised', async () => {
    const spec = parseHfConfig({
      model_type: 'gpt2',
      vocab_size: 50,
      n_positions: 16,
      n_embd: 8,
      n_layer: 1,
      n_head: 2,
    });
    const rng = new Rng(4);
    const bare: TensorMap = new Map();
    for (const [name, shape] of expectedTensors(spec)) {
      const n = shape.reduce((a, b) => a * b, 1);
      bare.set(name.replace(/^transformer\./, ''), {
        shape,
        data: Float32Array.from({ length: n }, () => rng.normal()),
      });
    }
    bare.set('h.0.attn.bias', { shape: [1, 1, 16, 16], data: new Float32Array(256) }); // causal-mask buffer
    const d = join(dir, 'gpt2');
    mkdirSync(d);
    writeFileSync(join(d, 'config.json'), JSON.stringify(hfConfigFromSpec(spec)));
    await writeSafetensors(join(d, 'model.safetensors'), bare);
    const back = await loadCheckpoint(d);
    assert.ok(back.tensors.has('transformer.h.0.attn.c_attn.weight'));
    assert.ok(!back.tensors.has('transformer.h.0.attn.bias'));
    assert.deepEqual(
      back.tensors.get('transformer.wte.weight')!.data,
      bare.get('wte.weight')!.data,
    );
  });

  test('missing, misshapen or unexpected tensors and bad configs are named', async () => {
    const spec = small();
    const tensors = randomLlamaWeights(spec, 5);
    const d = join(dir, 'broken');
    await saveCheckpoint(d, { spec, tensors, tokenizer: null, generationConfig: null });
    const without = new Map(tensors);
    without.delete('model.layers.1.mlp.up_proj.weight');
    await writeSafetensors(join(d, 'model.safetensors'), without);
    await assert.rejects(
      loadCheckpoint(d),
      (e: unknown) =>
        e instanceof FormatError &&
        /missing tensor 'model\.layers\.1\.mlp\.up_proj\.weight'/.test(e.message),
    );
    const extra = new Map(tensors);
    extra.set('model.layers.0.mlp.extra.weight', { shape: [2], data: new Float32Array(2) });
    await writeSafetensors(join(d, 'model.safetensors'), extra);
    await assert.rejects(
      loadCheckpoint(d),
      /unexpected tensor 'model\.layers\.0\.mlp\.extra\.weight'/,
    );
    await assert.rejects(
      saveCheckpoint(join(dir, 'x'), {
        spec: small({ hidden_size: 64 }),
        tensors,
        tokenizer: null,
        generationConfig: null,
      }),
      /has shape/,
    );
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    writeFileSync(
      join(d, 'config.json'),
      JSON.stringify({ ...cfg, rope_scaling: { rope_type: 'yarn', factor: 4 } }),
    );
    await assert.rejects(
      loadCheckpoint(d),
      (e: unknown) => e instanceof ConfigError && e.field === 'rope_scaling.rope_type',
    );
    await assert.rejects(loadCheckpoint(join(dir, 'nowhere')), /no config\.json/);
  });
});
