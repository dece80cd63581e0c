import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  type AdapterConfig,
  adapterFromTensors,
  type LoraAdapter,
  loadPeftAdapter,
  loraScale,
  mergeLora,
  parseAdapterConfig,
  savePeftAdapter,
} from '../../src/models/peft.ts';
import { SafetensorsReader } from '../../src/models/safetensors.ts';
import type { TensorMap } from '../../src/models/tensor.ts';
import { ConfigError, FormatError } from '../../src/util/errors.ts';
import { fixture } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-peft-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cfg = (o: Record<string, unknown>): AdapterConfig => parseAdapterConfig(o);
const t = (shape: number[], values: number[]) => ({ shape, data: Float32Array.from(values) });

describe('adapter_config.json', () => {
  test('a real PEFT config parses; defaults fill a minimal one', () => {
    const c = parseAdapterConfig(
      JSON.parse(readFileSync(fixture('models', 'adapter_config.json'), 'utf8')),
    );
    assert.equal(c.r, 16);
    assert.equal(c.lora_alpha, 32);
    assert.equal(loraScale(c, 'model.layers.0.self_attn.q_proj').scale, 2);
    const m = cfg({
      peft_type: 'LORA',
      r: 4,
      lora_alpha: 8,
      target_modules: ['q_proj'],
      base_model_name_or_path: 'x',
    });
    assert.equal(m.task_type, 'CAUSAL_LM');
    assert.equal(m.bias, 'none');
    assert.equal(m.lora_dropout, 0);
    assert.equal(m.use_rslora, false);
    assert.deepEqual(m.rank_pattern, {});
  });

  test('unsupported settings are ConfigErrors naming the key', () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ use_dora: true }, 'use_dora'],
      [{ bias: 'all' }, 'bias'],
      [{ modules_to_save: ['lm_head'] }, 'modules_to_save'],
      [{ init_lora_weights: 'pissa' }, 'init_lora_weights'],
      [{ peft_type: 'IA3' }, 'peft_type'],
      [{ frobnicate: 1 }, 'frobnicate'],
    ];
    for (const [o, field] of bad)
      assert.throws(
        () => parseAdapterConfig(o, 'adapter_config.json'),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.field === field &&
          e.message.includes('adapter_config.json'),
        field,
      );
  });

  test('rsLoRA and rank/alpha patterns set per-module scales', () => {
    const c = cfg({
      r: 4,
      lora_alpha: 8,
      use_rslora: true,
      rank_pattern: { 'layers.1.self_attn.q_proj': 16 },
      alpha_pattern: { v_proj: 2 },
    });
    assert.equal(loraScale(c, 'model.layers.0.self_attn.q_proj').scale, 8 / 2);
    assert.deepEqual(loraScale(c, 'model.layers.1.self_attn.q_proj'), {
      r: 16,
      alpha: 8,
      scale: 2,
    });
    assert.deepEqual(loraScale(c, 'model.layers.3.self_attn.v_proj'), { r: 4, alpha: 2, scale: 1 });
    // A pattern matches whole name components only.
    assert.equal(loraScale(c, 'model.layers.11.self_attn.q_proj').r, 4);
  });
});

describe('mergeLora', () => {
  test('W + (alpha/r)·B·A against a hand computation', () => {
    // W [2, 3]; A [2, 3]; B [2, 2]; alpha 4, r 2 → scale 2.
    const base: TensorMap = new Map([
      ['model.layers.0.mlp.up_proj.weight', t([2, 3], [1, 2, 3, 4, 5, 6])],
    ]);
    const adapter: LoraAdapter = {
      config: cfg({ r: 2, lora_alpha: 4 }),
      modules: new Map([
        [
          'model.layers.0.mlp.up_proj',
          { A: t([2, 3], [1, 0, -1, 0, 2, 1]), B: t([2, 2], [1, 1, 0.5, -1]) },
        ],
      ]),
    };
    // B·A = [[1, 2, 0], [0.5, -2, -1.5]]; ×2 = [[2, 4, 0], [1, -4, -3]].
    const merged = mergeLora(base, adapter);
    assert.deepEqual(
      [...merged.get('model.layers.0.mlp.up_proj.weight')!.data],
      [3, 6, 3, 5, 1, 3],
    );
    assert.deepEqual(
      [...base.get('model.layers.0.mlp.up_proj.weight')!.data],
      [1, 2, 3, 4, 5, 6],
      'base untouched',
    );
    // rsLoRA: scale = 4 / √2.
    const rs = mergeLora(base, {
      ...adapter,
      config: cfg({ r: 2, lora_alpha: 4, use_rslora: true }),
    });
    const s = 4 / Math.SQRT2;
    const expect = [1 + s, 2 + 2 * s, 3, 4 + 0.5 * s, 5 - 2 * s, 6 - 1.5 * s].map(Math.fround);
    assert.deepEqual([...rs.get('model.layers.0.mlp.up_proj.weight')!.data], expect);
  });

  test('fan_in_fan_out (GPT-2 Conv1D [in, out]) adds the transposed delta', () => {
    const base: TensorMap = new Map([['h.0.attn.c_proj.weight', t([3, 2], [0, 0, 0, 0, 0, 0])]]);
    const adapter: LoraAdapter = {
      config: cfg({ r: 1, lora_alpha: 1, fan_in_fan_out: true }),
      modules: new Map([['h.0.attn.c_proj', { A: t([1, 3], [1, 2, 3]), B: t([2, 1], [10, 100]) }]]),
    };
    assert.deepEqual(
      [...mergeLora(base, adapter).get('h.0.attn.c_proj.weight')!.data],
      [10, 100, 20, 200, 30, 300],
    );
  });

  test('shape or name mismatches are FormatErrors', () => {
    const base: TensorMap = new Map([['m.weight', t([2, 2], [0, 0, 0, 0])]]);
    const a = (mod: string): LoraAdapter => ({
      config: cfg({ r: 1, lora_alpha: 1 }),
      modules: new Map([[mod, { A: t([1, 3], [1, 1, 1]), B: t([2, 1], [1, 1]) }]]),
    });
    assert.throws(() => mergeLora(base, a('m')), /expects \[2, 3\]/);
    assert.throws(() => mergeLora(base, a('q')), /no 'q\.weight'/);
  });
});

describe('PEFT adapter directory', () => {
  test('save → load keeps PEFT tensor names, shapes and values; config is complete and sorted', async () => {
    const config = cfg({
      r: 2,
      lora_alpha: 16,
      target_modules: ['v_proj', 'q_proj'],
      base_model_name_or_path: 'tiny',
    });
    const modules = new Map([
      [
        'model.layers.0.self_attn.q_proj',
        { A: t([2, 4], [1, 2, 3, 4, 5, 6, 7, 8]), B: t([3, 2], [1, 0, 0, 1, 1, 1]) },
      ],
      [
        'model.layers.0.self_attn.v_proj',
        { A: t([2, 4], [0, 0, 1, 1, 2, 2, 3, 3]), B: t([2, 2], [0.5, 0.25, 0, -1]) },
      ],
    ]);
    const d = join(dir, 'adapter');
    await savePeftAdapter(d, { config, modules });
    const r = await SafetensorsReader.open(join(d, 'adapter_model.safetensors'));
    assert.deepEqual(r.names().sort(), [
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
      'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight',
      'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight',
    ]);
    assert.deepEqual(
      r.entry('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight').shape,
      [3, 2],
    );
    await r.close();
    const json = JSON.parse(readFileSync(join(d, 'adapter_config.json'), 'utf8'));
    assert.deepEqual(Object.keys(json), Object.keys(json).sort());
    assert.equal(json.peft_type, 'LORA');
    assert.equal(json.task_type, 'CAUSAL_LM');
    assert.deepEqual(json.target_modules, ['q_proj', 'v_proj']);
    for (const k of [
      'r',
      'lora_alpha',
      'lora_dropout',
      'use_rslora',
      'bias',
      'fan_in_fan_out',
      'rank_pattern',
      'alpha_pattern',
      'modules_to_save',
    ])
      assert.ok(k in json, k);
    const back = await loadPeftAdapter(d);
    assert.equal(back.config.lora_alpha, 16);
    assert.deepEqual([...back.modules.keys()].sort(), [...modules.keys()].sort());
    assert.deepEqual(
      back.modules.get('model.layers.0.self_attn.q_proj')!.B.data,
      modules.get('model.layers.0.self_attn.q_proj')!.B.data,
    );
  });

  test('a missing factor, a wrong rank or a foreign tensor name is a FormatError', () => {
    const c = cfg({ r: 2, lora_alpha: 2 });
    const A = t([2, 2], [1, 2, 3, 4]);
    assert.throws(
      () => adapterFromTensors(c, new Map([['base_model.model.x.lora_A.weight', A]])),
      /lacks its lora_B/,
    );
    assert.throws(
      () =>
        adapterFromTensors(
          c,
          new Map([
            ['base_model.model.x.lora_A.weight', t([1, 2], [1, 2])],
            ['base_model.model.x.lora_B.weight', t([2, 1], [1, 2])],
          ]),
        ),
      /rank 2/,
    );
    assert.throws(() => adapterFromTensors(c, new Map([['model.x.weight', A]])), FormatError);
  });
});
