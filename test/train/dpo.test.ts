// trainDpo / trainOrpo on a tiny LLaMA: the loss at the first step is the known answer for every
// way of getting the reference (precomputed and cached, LoRA adapter disabled, frozen copy);
// one step raises rewards/margins; the LoRA adapter saves in PEFT format and merges; the
// reference cache is reused; bad data is refused naming the record.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CausalLM } from '../../src/models/lm.ts';
import { loadPeftAdapter, mergeLora } from '../../src/models/peft.ts';
import { parseDpoConfig, trainDpo } from '../../src/train/dpo.ts';
import type { StepLog } from '../../src/train/loop.ts';
import { parseOrpoConfig, trainOrpo } from '../../src/train/orpo.ts';
import { loadTokenizedPreferences } from '../../src/train/preference-tokenize.ts';
import { DataError } from '../../src/util/errors.ts';
import { eos, smallSpec, tokenizer } from './tiny.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-dpo-'));
const colours = ['red', 'blue', 'green'];
const prefs = Array.from({ length: 12 }, (_, i) => ({
  prompt: `Q${i}: what colour?\nAnswer:`,
  chosen: ` ${colours[i % 3]}`,
  rejected: ` ${colours[(i + 1) % 3]}`,
}));
const model = () => CausalLM.random(smallSpec(64), 3, tokenizer);

const base = {
  model_name_or_path: '(memory)',
  train_file: '(memory)',
  // One batch holds every pair, so step 2 measures the same pairs step 1 trained on.
  per_device_train_batch_size: 12,
  max_length: 64,
  logging_steps: 1,
  use_worker: false,
  disable_tqdm: true,
  lr_scheduler_type: 'constant' as const,
};

async function firstSteps(extra: Record<string, unknown>, steps = 2): Promise<StepLog[]> {
  const r = await trainDpo(
    parseDpoConfig({
      ...base,
      output_dir: join(dir, `run-${Object.values(extra).join('-')}`),
      max_steps: steps,
      ...extra,
    }),
    { model: model(), train: prefs },
  );
  return r.logs;
}

for (const [name, extra] of [
  ['precomputed reference', { precompute_ref_log_probs: true }],
  ['LoRA, adapter disabled', { use_peft: true, lora_r: 4, lora_alpha: 8 }],
  ['full fine-tuning, frozen copy', {}],
] as const) {
  test(`DPO (${name}): step-1 loss is ln 2, one step raises rewards/margins`, async () => {
    const logs = await firstSteps({ ...extra, learning_rate: 5e-3 });
    const [s1, s2] = logs as [StepLog, StepLog];
    // Cached log-probs come from another graph: equal up to float32 rounding.
    assert.ok(Math.abs(s1.loss - Math.LN2) < 1e-5, `step-1 loss ${s1.loss}`);
    assert.ok(Math.abs(s1['rewards/margins']!) < 1e-5);
    assert.equal(s1['rewards/accuracies'], 0);
    for (const k of ['rewards/chosen', 'rewards/rejected', 'logps/chosen', 'logps/rejected'])
      assert.ok(Number.isFinite(s1[k]), k);
    assert.ok(s1['logps/chosen']! < 0);
    assert.ok(s2['rewards/margins']! > 0, `margin after one step ${s2['rewards/margins']}`);
    assert.ok(s2.loss < Math.LN2, `loss after one step ${s2.loss}`);
  });
}

test('DPO known answers at step 1: hinge = 1, IPO = (1/(2β))², robust = ln 2', async () => {
  const [h] = await firstSteps({ loss_type: 'hinge', precompute_ref_log_probs: true }, 1);
  assert.ok(Math.abs(h!.loss - 1) < 1e-5, String(h!.loss));
  const [i] = await firstSteps({ loss_type: ['ipo'], beta: 0.2, use_peft: true }, 1);
  assert.ok(Math.abs(i!.loss - 6.25) < 1e-4, String(i!.loss));
  const [r] = await firstSteps({ loss_type: 'robust', label_smoothing: 0.1, use_peft: true }, 1);
  assert.ok(Math.abs(r!.loss - Math.LN2) < 1e-5, String(r!.loss));
});

test('DPO config: TRL defaults; loss_weights must match loss_type', () => {
  const c = parseDpoConfig({ ...base, output_dir: 'x' });
  assert.equal(c.beta, 0.1);
  assert.equal(c.learning_rate, 1e-6);
  assert.deepEqual(c.loss_type, ['sigmoid']);
  assert.equal(c.precompute_ref_log_probs, false);
  assert.throws(
    () =>
      parseDpoConfig({
        ...base,
        output_dir: 'x',
        loss_type: ['sigmoid', 'sft'],
        loss_weights: [1],
      }),
    /loss_weights/,
  );
  assert.throws(() => parseDpoConfig({ ...base, output_dir: 'x', loss_type: 'kto' }), /loss_type/);
});

test('precomputed reference log-probs are cached by model and data hash, and reused', async () => {
  const out = join(dir, 'cache');
  const cfg = parseDpoConfig({
    ...base,
    output_dir: out,
    max_steps: 1,
    precompute_ref_log_probs: true,
  });
  const a = await trainDpo(cfg, { model: model(), train: prefs });
  assert.equal(a.refCache!.cached, false);
  assert.ok(existsSync(a.refCache!.file));
  const b = await trainDpo(cfg, { model: model(), train: prefs, eval: prefs.slice(0, 4) });
  assert.equal(b.refCache!.cached, true);
  // Eval pairs get cached reference log-probs too: eval metrics under TRL's names, prefixed.
  assert.ok(Number.isFinite(b.evalMetrics!['eval_rewards/margins']));
  assert.ok(Number.isFinite(b.evalLoss));
  assert.equal(b.refCache!.file, a.refCache!.file);
  assert.equal(b.logs[0]!.loss, a.logs[0]!.loss);
  // Other data: another file.
  const c = await trainDpo(cfg, { model: model(), train: prefs.slice(0, 8) });
  assert.notEqual(c.refCache!.file, a.refCache!.file);
  assert.equal(readdirSync(join(out, 'ref_logps')).length, 3);
});

test('LoRA DPO adapter saves in PEFT format and merges into the base', async () => {
  const out = join(dir, 'lora');
  const lm = model();
  const r = await trainDpo(
    parseDpoConfig({
      ...base,
      output_dir: out,
      max_steps: 3,
      use_peft: true,
      lora_r: 4,
      lora_alpha: 8,
      learning_rate: 5e-3,
    }),
    { model: lm, train: prefs },
  );
  assert.equal(r.reference, 'adapter_disabled');
  assert.ok(existsSync(join(out, 'adapter_config.json')));
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')));
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.r, 4);
  const adapter = await loadPeftAdapter(out);
  // The adapter moved (B no longer zero).
  assert.ok([...adapter.modules.values()].some((m) => m.B.data.some((v) => v !== 0)));
  // Merged weights give the adapted model's logits.
  const ids = tokenizer.encode('Q1: what colour?\nAnswer: blue', { addSpecialTokens: false });
  const adapted = await lm.logits(ids);
  const merged = new CausalLM(lm.spec, mergeLora(lm.weights, adapter), tokenizer);
  const m = await merged.logits(ids);
  let worst = 0;
  for (let i = 0; i < m.data.length; i++)
    worst = Math.max(worst, Math.abs(m.data[i]! - adapted.data[i]!));
  assert.ok(worst < 1e-4, `merged vs adapted logits differ by ${worst}`);
});

test('ORPO: step-1 loss is NLL(chosen) − β·mean logσ(log-odds); one step lowers it', async () => {
  const r = await trainOrpo(
    parseOrpoConfig({ ...base, output_dir: join(dir, 'orpo'), max_steps: 2, learning_rate: 5e-3 }),
    { model: model(), train: prefs },
  );
  const [s1, s2] = r.logs as [StepLog, StepLog];
  const want = s1.nll_loss! - 0.1 * s1.log_odds_ratio!;
  assert.ok(Math.abs(s1.loss - want) < 1e-5, `${s1.loss} vs ${want}`);
  assert.ok(s1.nll_loss! > 0);
  assert.ok(s2.loss < s1.loss);
});

test('bad preference data: a DataError naming the record, or a counted skip', async () => {
  const p = join(dir, 'bad.jsonl');
  writeFileSync(
    p,
    `${JSON.stringify(prefs[0])}\n${JSON.stringify({ prompt: 'x', chosen: ' a', rejected: ' a' })}\n`,
  );
  await assert.rejects(
    trainDpo(
      parseDpoConfig({ ...base, train_file: p, output_dir: join(dir, 'bad'), max_steps: 1 }),
      { model: model() },
    ),
    (e: unknown) => e instanceof DataError && e.message.includes(`${p}:2`),
  );
  const r = await trainDpo(
    parseDpoConfig({
      ...base,
      train_file: p,
      output_dir: join(dir, 'bad2'),
      max_steps: 1,
      skip_invalid: true,
    }),
    { model: model() },
  );
  assert.equal(r.skipped.skipped, 1);
  assert.match(r.skipped.reasons[0]!, /bad.jsonl:2: .*identical/);
  assert.equal(r.pairs, 1);
});

test('tokenisation: prompt and completion apart, EOS ends each, no room for a completion is refused', async () => {
  const long = {
    prompt: 'Q1: what colour? '.repeat(20),
    chosen: ' red',
    rejected: ' blue',
    where: 'f.jsonl:7',
  };
  const ok = await loadTokenizedPreferences([prefs[0]!], tokenizer, { eosId: eos, maxLength: 64 });
  const t = ok.examples[0]!;
  assert.deepEqual(t.prompt, tokenizer.encode(prefs[0]!.prompt, { addSpecialTokens: false }));
  assert.deepEqual(t.completions[0], [
    ...tokenizer.encode(' red', { addSpecialTokens: false }),
    eos,
  ]);
  assert.deepEqual(t.completions[1], [
    ...tokenizer.encode(' blue', { addSpecialTokens: false }),
    eos,
  ]);
  const ex = {
    prompt: long.prompt,
    completions: [' red', ' blue'],
    ranks: [0, 1],
    where: long.where,
  };
  await assert.rejects(
    loadTokenizedPreferences([ex], tokenizer, { eosId: eos, maxLength: 40 }),
    (e: unknown) =>
      e instanceof DataError &&
      /f\.jsonl:7: .*no room for the completion within max_length 40/.test(e.message),
  );
  const report = { skipped: 0, reasons: [] as string[] };
  const r = await loadTokenizedPreferences([ex, prefs[1]!], tokenizer, {
    eosId: eos,
    maxLength: 40,
    skipInvalid: true,
    report,
  });
  assert.equal(r.examples.length, 1);
  assert.equal(report.skipped, 1);
  assert.match(report.reasons[0]!, /f\.jsonl:7/);
});

test('conversational pairs render through the chat template: the generation prompt, then the reply and its end of turn', async () => {
  const rec = {
    chosen: [
      { role: 'user', content: 'What colour is item 4?' },
      { role: 'assistant', content: 'blue' },
    ],
    rejected: [
      { role: 'user', content: 'What colour is item 4?' },
      { role: 'assistant', content: 'red' },
    ],
  };
  const r = await loadTokenizedPreferences([rec], tokenizer, {
    eosId: eos,
    maxLength: 64,
    chatTemplate: tokenizer.chatTemplate,
  });
  const enc = (s: string) => tokenizer.encode(s, { addSpecialTokens: false });
  const t = r.examples[0]!;
  // <|im_end|> is the tiny tokenizer's EOS: it closes each reply, nothing follows it.
  assert.deepEqual(
    t.prompt,
    enc('<|im_start|>user\nWhat colour is item 4?<|im_end|>\n<|im_start|>assistant\n'),
  );
  assert.deepEqual(t.completions, [
    [...enc('blue'), eos],
    [...enc('red'), eos],
  ]);
  // Without a chat template: a DataError naming the record.
  await assert.rejects(
    loadTokenizedPreferences([rec], tokenizer, { eosId: eos, maxLength: 64, chatTemplate: null }),
    (e: unknown) => e instanceof DataError && /record 1: .*chat_template/.test(e.message),
  );
});
