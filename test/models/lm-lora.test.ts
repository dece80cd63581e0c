// CausalLM's adapter API on both families: short target aliases map to each family's modules,
// a fresh adapter is a no-op, saveAdapter writes PEFT files whose target_modules select exactly
// the adapted modules (GPT-2's o alias is attn.c_proj, not every c_proj), load({ adapter })
// reproduces the adapted logits, and mergeAdapter folds it in with the same logits.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseHfConfig } from '../../src/models/config.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { Rng } from '../../src/util/rng.ts';

const configs = {
  llama: {
    model_type: 'llama',
    vocab_size: 50,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 32,
    initializer_range: 0.2,
  },
  gpt2: {
    model_type: 'gpt2',
    vocab_size: 50,
    n_embd: 32,
    n_layer: 2,
    n_head: 4,
    n_positions: 32,
    initializer_range: 0.2,
  },
};
const cases = [
  {
    family: 'llama' as const,
    targets: ['q', 'v', 'down'],
    modules: ['self_attn.q_proj', 'self_attn.v_proj', 'mlp.down_proj'],
    written: ['down_proj', 'q_proj', 'v_proj'],
  },
  {
    family: 'gpt2' as const,
    targets: ['o', 'up'],
    modules: ['attn.c_proj', 'mlp.c_fc'],
    written: ['attn.c_proj', 'c_fc'],
  },
];

const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

for (const c of cases) {
  test(`${c.family}: attach (aliases), save as PEFT, load with the model, merge`, async () => {
    const spec = parseHfConfig(configs[c.family]);
    const dir = mkdtempSync(join(tmpdir(), `ik-lm-lora-${c.family}-`));
    const base = join(dir, 'base');
    const lm = CausalLM.random(spec, 3);
    await lm.save(base);
    const ids = [4, 9, 33, 2, 17, 8];
    const plain = (await lm.logits(ids)).data;

    lm.attachLora({ r: 4, lora_alpha: 8, target_modules: c.targets }, 1);
    const prefix = c.family === 'gpt2' ? 'transformer.h' : 'model.layers';
    const adapted = new Set(
      [...lm.lora!.tensors.keys()].map((n) =>
        n.replace(/^base_model\.model\./, '').replace(/\.lora_[AB]\.weight$/, ''),
      ),
    );
    assert.deepEqual(
      [...adapted].sort(),
      [0, 1].flatMap((l) => c.modules.map((m) => `${prefix}.${l}.${m}`)).sort(),
    );
    assert.deepEqual((await lm.logits(ids)).data, plain, 'a fresh adapter is a no-op');
    assert.throws(() => lm.attachLora({ r: 2 }), /already attached/);

    // Give B values so the adapter matters, then save it.
    const rng = new Rng(5);
    lm.setWeights(
      new Map(
        [...lm.lora!.tensors]
          .filter(([n]) => n.includes('lora_B'))
          .map(([n, t]) => [n, Float32Array.from(t.data, () => 0.2 * rng.normal())]),
      ),
    );
    const withAdapter = (await lm.logits(ids)).data;
    assert.ok(maxDiff(withAdapter, plain) > 0.01, 'the trained adapter changes the logits');
    const out = join(dir, 'adapter');
    await lm.saveAdapter(out, { baseModel: base });
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    assert.deepEqual(cfg.target_modules, c.written);
    assert.equal(cfg.fan_in_fan_out, c.family === 'gpt2');
    assert.equal(cfg.r, 4);
    assert.equal(cfg.lora_alpha, 8);

    const again = await CausalLM.load(base, { adapter: out });
    assert.ok(maxDiff((await again.logits(ids)).data, withAdapter) < 1e-6);
    again.mergeAdapter();
    assert.equal(again.lora, null);
    assert.ok(maxDiff((await again.logits(ids)).data, withAdapter) < 1e-4, 'merged = adapted');
  });
}
