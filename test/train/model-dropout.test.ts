// `model_dropout` in the SFT config: the model's own dropout rates apply in training only when
// asked, change the run, and reproduce under the same seed; the eval loss never drops.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ModelSpec } from '../../src/models/config.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../../src/models/tiny.ts';
import { packExamples, tokenizePair } from '../../src/train/data.ts';
import { evalLoss } from '../../src/train/eval-loss.ts';
import { parseSftConfig, trainSft } from '../../src/train/sft.ts';

const corpus = Array.from({ length: 24 }, (_, i) => `Item ${i} is ${['red', 'blue'][i % 2]}.`);
const { tokenizer } = trainTinyTokenizer(corpus, 300);
const spec: ModelSpec = {
  ...tinyLlamaConfig({
    vocabSize: 300,
    eosTokenId: tokenizer.eos!.id,
    padTokenId: tokenizer.pad!.id,
    maxPositions: 64,
  }),
  hiddenSize: 16,
  intermediateSize: 32,
  numLayers: 1,
  numHeads: 2,
  numKvHeads: 1,
  headDim: 8,
  attentionDropout: 0.3,
};
const pairs = corpus.map((c, i) => ({ prompt: `Q${i}: colour?\nA:`, completion: ` ${c}` }));

async function run(modelDropout: boolean | undefined, seed = 42) {
  const cfg = parseSftConfig({
    model_name_or_path: 'mem',
    train_file: 'mem',
    eval_file: 'mem',
    output_dir: mkdtempSync(join(tmpdir(), 'ik-model-dropout-')),
    learning_rate: 5e-3,
    max_steps: 3,
    per_device_train_batch_size: 4,
    max_length: 64,
    logging_steps: 1,
    eval_steps: 3,
    disable_tqdm: true,
    use_worker: false,
    seed,
    ...(modelDropout === undefined ? {} : { model_dropout: modelDropout }),
  });
  const r = await trainSft(cfg, {
    model: CausalLM.random(spec, 1, tokenizer),
    train: pairs,
    eval: pairs.slice(0, 4),
  });
  return { losses: r.logs.map((l) => l.loss), evalLoss: r.evalLoss, model: r.model };
}

test('model_dropout is off by default, changes training when on, and is reproducible', async () => {
  const dflt = await run(undefined);
  const off = await run(false);
  assert.deepEqual(dflt.losses, off.losses, 'off by default');
  const on = await run(true);
  const again = await run(true);
  assert.notDeepEqual(on.losses, off.losses, 'attention_dropout 0.3 changes the training losses');
  assert.deepEqual(again.losses, on.losses, 'same seed, same run');
  assert.equal(again.evalLoss, on.evalLoss);
  // The eval loss runs without dropout: the trained weights score the same as under a spec
  // with every rate at 0.
  const rows = packExamples(
    pairs.map((p) => tokenizePair(tokenizer, p.prompt, p.completion, { eosId: tokenizer.eos!.id })),
    64,
    true,
  ).rows;
  const o = { batchSize: 4, padId: tokenizer.pad!.id, maxLength: 64 };
  const zero = new CausalLM({ ...spec, attentionDropout: 0 }, on.model.weights, tokenizer);
  assert.equal(await evalLoss(on.model, rows, o), await evalLoss(zero, rows, o));
});
