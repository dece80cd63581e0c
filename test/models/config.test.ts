import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { hfConfigFromSpec, loadHfConfig, parseHfConfig } from '../../src/models/config.ts';
import { ropeInvFreq } from '../../src/models/rope-config.ts';
import { parameterCount, tinyLlamaConfig, tinyLlamaHfConfig } from '../../src/models/tiny.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { fixture } from '../helpers/shared.ts';

const cfg = (name: string) => fixture('models', 'configs', `${name}.json`);
const raw = (name: string) =>
  JSON.parse(readFileSync(cfg(name), 'utf8')) as Record<string, unknown>;

function rejectsField(obj: unknown, field: string, re?: RegExp): void {
  assert.throws(
    () => parseHfConfig(obj, 'config.json'),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
      assert.equal(e.field, field);
      assert.ok(e.message.includes(`'${field}'`), e.message);
      assert.ok(e.message.includes('config.json'), e.message);
      if (re) assert.match(e.message, re);
      return true;
    },
  );
}

describe('HF config.json', () => {
  test('Llama 3.2 1B: GQA, head_dim, llama3 rope scaling, tied; 1,235,814,400 parameters', async () => {
    const s = await loadHfConfig(cfg('llama-3.2-1b'));
    assert.equal(s.family, 'llama');
    assert.equal(s.numKvHeads, 8);
    assert.equal(s.headDim, 64);
    assert.deepEqual(s.rope, {
      theta: 500000,
      scaling: {
        type: 'llama3',
        factor: 32,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositions: 8192,
      },
    });
    assert.equal(s.tieWordEmbeddings, true);
    assert.equal(s.torchDtype, 'bfloat16');
    assert.equal(parameterCount(s), 1_235_814_400);
  });

  test('Qwen2.5 0.5B: q/k/v biases, no o bias, sliding window off; 494,032,768 parameters', async () => {
    const s = await loadHfConfig(cfg('qwen2.5-0.5b'));
    assert.equal(s.modelType, 'qwen2');
    assert.equal(s.qkvBias, true);
    assert.equal(s.oBias, false);
    assert.equal(s.rope?.theta, 1e6);
    assert.equal(parameterCount(s), 494_032_768);
  });

  test('GPT-2: learned positions, LayerNorm, gelu_new; 124,439,808 parameters', async () => {
    const s = await loadHfConfig(cfg('gpt2'));
    assert.equal(s.family, 'gpt2');
    assert.equal(s.position, 'learned');
    assert.equal(s.activation, 'gelu_new');
    assert.equal(s.intermediateSize, 3072);
    assert.equal(s.tieWordEmbeddings, true);
    assert.equal(parameterCount(s), 124_439_808);
  });

  test('Mistral (sliding_window null) and TinyLlama (no rope_theta → 10000) load', async () => {
    const m = await loadHfConfig(cfg('mistral-7b-v0.3'));
    assert.equal(m.architecture, 'MistralForCausalLM');
    assert.equal(m.rope?.theta, 1e6);
    const t = await loadHfConfig(cfg('tinyllama-1.1b'));
    assert.deepEqual(t.rope, { theta: 10000, scaling: null });
    assert.equal(t.numKvHeads, 4);
  });

  test('transformers v5 rope_parameters reads like v4 rope_theta, and is written back in v4 form', async () => {
    const s = await loadHfConfig(cfg('llama-v5-rope-parameters'));
    assert.deepEqual(s.rope, { theta: 100000, scaling: null });
    const out = hfConfigFromSpec(s);
    assert.equal(out.rope_theta, 100000);
    assert.equal(out.rope_scaling, null);
    assert.ok(!('rope_parameters' in out));
    // v5 spelling of a scaled rope.
    const r = raw('llama-3.2-1b');
    const { rope_theta, rope_scaling, ...rest } = r;
    const v5 = { ...rest, rope_parameters: { ...(rope_scaling as object), rope_theta } };
    assert.deepEqual(parseHfConfig(v5).rope, parseHfConfig(r).rope);
  });

  test('spec → config.json → spec is the identity for every fixture', () => {
    for (const n of [
      'llama-3.2-1b',
      'qwen2.5-0.5b',
      'gpt2',
      'mistral-7b-v0.3',
      'tinyllama-1.1b',
      'llama-v5-rope-parameters',
    ]) {
      const s = parseHfConfig(raw(n));
      const again = parseHfConfig(JSON.parse(JSON.stringify(hfConfigFromSpec(s))));
      assert.deepEqual(again, s, n);
    }
  });

  test('model_type missing: resolved from architectures', () => {
    const { model_type: _m, ...r } = raw('qwen2.5-0.5b');
    assert.equal(parseHfConfig(r).modelType, 'qwen2');
  });

  test('keys that change the math are errors naming the key', () => {
    const llama = raw('tinyllama-1.1b');
    rejectsField(
      { ...llama, quantization_config: { quant_method: 'gptq' } },
      'quantization_config',
      /unsupported key/,
    );
    rejectsField({ ...llama, mlp_bias: true }, 'mlp_bias');
    rejectsField({ ...llama, hidden_act: 'gelu' }, 'hidden_act');
    rejectsField(
      { ...llama, rope_scaling: { rope_type: 'yarn', factor: 4 } },
      'rope_scaling.rope_type',
      /yarn/,
    );
    rejectsField({ ...llama, rope_scaling: { type: 'su', factor: 4 } }, 'rope_scaling.type');
    rejectsField(
      { ...llama, rope_scaling: { rope_type: 'linear', factor: 2, mscale: 1 } },
      'rope_scaling.mscale',
    );
    rejectsField(
      { ...llama, rope_parameters: { rope_type: 'longrope', rope_theta: 1e4 } },
      'rope_parameters.rope_type',
    );
    rejectsField(
      { ...llama, rope_theta: 1e4, rope_parameters: { rope_type: 'default', rope_theta: 5e5 } },
      'rope_parameters.rope_theta',
      /disagrees/,
    );
    rejectsField({ ...raw('mistral-7b-v0.3'), sliding_window: 4096 }, 'sliding_window');
    // A window as long as the context changes nothing and is accepted.
    assert.equal(parseHfConfig({ ...raw('mistral-7b-v0.3'), sliding_window: 32768 }).numLayers, 32);
    rejectsField({ ...raw('qwen2.5-0.5b'), use_sliding_window: true }, 'use_sliding_window');
    rejectsField(
      { ...raw('qwen2.5-0.5b'), layer_types: ['full_attention', 'sliding_attention'] },
      'layer_types',
    );
    rejectsField({ ...llama, model_type: 'gemma' }, 'model_type');
    rejectsField({ ...llama, num_key_value_heads: 5 }, 'num_key_value_heads');
    rejectsField({ ...llama, hidden_size: 'big' }, 'hidden_size');
    rejectsField(
      { ...raw('gpt2'), scale_attn_by_inverse_layer_idx: true },
      'scale_attn_by_inverse_layer_idx',
    );
    rejectsField({ ...raw('gpt2'), n_embd: 770 }, 'n_head');
  });

  test('bookkeeping keys are accepted', () => {
    const s = parseHfConfig({
      ...raw('tinyllama-1.1b'),
      _name_or_path: 'x',
      output_attentions: false,
      id2label: { 0: 'a' },
      max_length: 20,
      temperature: 0.7,
      auto_map: {},
    });
    assert.equal(s.numLayers, 22);
  });
});

describe('RoPE frequencies', () => {
  test('llama3 scaling keeps high, divides low and blends the middle band (hand-computed)', () => {
    const rope = parseHfConfig(raw('llama-3.2-1b')).rope!;
    const inv = ropeInvFreq(rope, 64);
    const plain = ropeInvFreq({ theta: 500000, scaling: null }, 64);
    // wavelen_i = 2π·500000^(2i/64); high band (wavelen < 8192/4 = 2048) is unchanged.
    assert.equal(inv[0], 1);
    for (let i = 0; i < 32; i++) {
      const w = (2 * Math.PI) / plain[i];
      if (w < 2048) assert.equal(inv[i], plain[i]);
      else if (w > 8192) assert.equal(inv[i], plain[i] / 32);
      else {
        const smooth = (8192 / w - 1) / (4 - 1);
        assert.ok(Math.abs(inv[i] - (((1 - smooth) * plain[i]) / 32 + smooth * plain[i])) < 1e-15);
      }
    }
    // i = 12: wavelen = 2π·500000^(24/64) ≈ 857 → high band; i = 16: ≈ 4443 → medium.
    assert.equal(inv[12], plain[12]);
    const w16 = 2 * Math.PI * 500000 ** 0.5;
    assert.ok(Math.abs(w16 - 4442.88) < 0.01);
    assert.ok(inv[16] < plain[16] && inv[16] > plain[16] / 32);
  });
  test('linear scaling divides every frequency', () => {
    const inv = ropeInvFreq({ theta: 10000, scaling: { type: 'linear', factor: 4 } }, 8);
    assert.deepEqual([...inv], [1 / 4, 10000 ** -0.25 / 4, 10000 ** -0.5 / 4, 10000 ** -0.75 / 4]);
  });
});

describe('built-in tiny model', () => {
  test('a few million parameters, q8_0-friendly widths, valid config.json', () => {
    const s = tinyLlamaConfig();
    assert.equal(parameterCount(s), 3_475_712);
    assert.equal(s.intermediateSize % 32, 0);
    assert.equal(s.hiddenSize % 32, 0);
    assert.equal(s.numHeads * s.headDim, s.hiddenSize);
    assert.deepEqual(parseHfConfig(tinyLlamaHfConfig()), s);
  });
});
