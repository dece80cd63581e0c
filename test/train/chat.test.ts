// Chat records through the model's chat template: the loss mask at exact token positions
// (assistant replies and their end-of-turn token only), the trainer's loss on such records
// equal to a direct scoring with that mask, and loud failures that name the example.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CausalLM } from '../../src/models/lm.ts';
import { Tokenizer } from '../../src/models/tokenizer.ts';
import { loadExamples } from '../../src/train/examples.ts';
import { parseSftConfig, trainSft } from '../../src/train/sft.ts';
import { TrainingError } from '../../src/util/errors.ts';
import { bpe, directLoss, eos, smallSpec, snapshot, tokenizer } from './tiny.ts';

const tmp = (p: string) => mkdtempSync(join(tmpdir(), `ik-${p}-`));
const chat = (i: number) => ({
  messages: [
    { role: 'system', content: 'Answer briefly.' },
    { role: 'user', content: `What colour is item ${i}?` },
    { role: 'assistant', content: ['red', 'blue', 'green'][i % 3]! },
    { role: 'user', content: 'Sure?' },
    { role: 'assistant', content: `Yes, item ${i} is ${['red', 'blue', 'green'][i % 3]}.` },
  ],
});
const enc = (s: string) => tokenizer.encode(s, { addSpecialTokens: false });

test('chat masking: only assistant tokens and their <|im_end|> are in the loss, at exact positions', async () => {
  const [ex] = await loadExamples([chat(4)], tokenizer, { eosId: eos }, tokenizer.chatTemplate);
  // The tiny model's ChatML template, token by token.
  const imStart = enc('<|im_start|>');
  const imEnd = enc('<|im_end|>');
  assert.deepEqual(imEnd, [eos], '<|im_end|> is one special token, the EOS');
  assert.equal(imStart.length, 1);
  const pieces: [number[], 0 | 1][] = [
    [[...imStart, ...enc('system\nAnswer briefly.'), ...imEnd, ...enc('\n')], 0],
    [[...imStart, ...enc('user\nWhat colour is item 4?'), ...imEnd, ...enc('\n')], 0],
    [[...imStart, ...enc('assistant\n')], 0],
    [[...enc('blue'), ...imEnd], 1],
    [[...enc('\n'), ...imStart, ...enc('user\nSure?'), ...imEnd, ...enc('\n')], 0],
    [[...imStart, ...enc('assistant\n')], 0],
    [[...enc('Yes, item 4 is blue.'), ...imEnd], 1],
    [enc('\n'), 0],
  ];
  const ids = pieces.flatMap(([p]) => p);
  const mask = pieces.flatMap(([p, m]) => p.map(() => m));
  assert.deepEqual(ex!.ids, ids);
  assert.deepEqual(ex!.lossMask, mask);
  // Of the five <|im_end|> tokens only the assistants' two carry loss.
  const ends = ids.flatMap((t, i) => (t === eos ? [i] : []));
  assert.equal(ends.length, 5);
  assert.deepEqual(
    ends.map((i) => mask[i]),
    [0, 0, 1, 0, 1],
  );
  assert.equal(
    tokenizer.decode(
      ids.filter((_, i) => mask[i] === 1),
      { skipSpecialTokens: false },
    ),
    'blue<|im_end|>Yes, item 4 is blue.<|im_end|>',
  );
  // No EOS is appended after the template's own end of turn.
  assert.equal(ids.length, ex!.ids.length);

  // completion_only_loss false: every token.
  const [all] = await loadExamples(
    [chat(4)],
    tokenizer,
    { eosId: eos, completionOnly: false },
    tokenizer.chatTemplate,
  );
  assert.deepEqual(all!.ids, ids);
  assert.ok(all!.lossMask.every((m) => m === 1));
});

test('the trainer takes its loss on chat records with exactly that mask', async () => {
  const model = CausalLM.random(smallSpec(128), 3, tokenizer);
  const evalChats = [chat(50), chat(51), chat(52)];
  let after: CausalLM | undefined;
  const r = await trainSft(
    parseSftConfig({
      model_name_or_path: 'mem',
      train_file: 'mem',
      output_dir: tmp('chat-sft'),
      learning_rate: 5e-3,
      max_steps: 3,
      per_device_train_batch_size: 4,
      max_length: 128,
      packing: true,
      logging_steps: 1,
      disable_tqdm: true,
      use_worker: false,
    }),
    {
      model,
      train: Array.from({ length: 16 }, (_, i) => chat(i)),
      eval: evalChats,
      onLog: (l) => {
        if (l.eval_loss !== undefined) after = snapshot(model);
      },
    },
  );
  const examples = await loadExamples(evalChats, tokenizer, { eosId: eos }, tokenizer.chatTemplate);
  assert.ok(
    examples.every((e) => e.ids.length <= 128 && e.ids.length > 64),
    'not truncated; packed alone',
  );
  const want = await directLoss(
    after!,
    examples.map((e) => ({ ids: e.ids, mask: e.lossMask })),
  );
  assert.ok(Math.abs(r.evalLoss! - want) < 1e-4 * want, `${r.evalLoss} vs ${want}`);
  // The same scoring with the user turns in the mask gives a different number.
  const wrong = await directLoss(
    after!,
    examples.map((e) => ({ ids: e.ids, mask: e.ids.map(() => 1) })),
  );
  assert.ok(Math.abs(r.evalLoss! - wrong) > 1e-2);
});

test('an empty assistant reply, or a template that leaves the assistant span empty, fails naming the example', async () => {
  const dir = tmp('chat-bad');
  const file = join(dir, 'train.jsonl');
  const bad = chat(2);
  bad.messages[4]!.content = '';
  writeFileSync(file, `${[chat(1), bad].map((c) => JSON.stringify(c)).join('\n')}\n`);
  const cfg = parseSftConfig({
    model_name_or_path: 'mem',
    train_file: file,
    output_dir: join(dir, 'out'),
    max_steps: 1,
    max_length: 64,
    disable_tqdm: true,
    use_worker: false,
  });
  await assert.rejects(
    () => trainSft(cfg, { model: CausalLM.random(smallSpec(), 3, tokenizer) }),
    (e: unknown) =>
      e instanceof TrainingError &&
      e.message.startsWith(`${file}:2: assistant message 4 renders empty`),
  );

  // A template that trims replies: a whitespace-only reply leaves an empty span.
  const trimming = Tokenizer.fromBpe(bpe, {
    eosToken: '<|im_end|>',
    padToken: '<pad>',
    chatTemplate:
      "{%- for m in messages -%}{{- '<|im_start|>' + m['role'] + '\\n' + (m['content'] | trim) + '<|im_end|>\\n' -}}{%- endfor -%}",
  });
  const spaced = chat(3);
  spaced.messages[2]!.content = '   ';
  await assert.rejects(
    () =>
      trainSft(parseSftConfig({ ...cfg, train_file: 'mem' }), {
        model: CausalLM.random(smallSpec(), 3, trimming),
        train: [chat(1), chat(2), spaced],
      }),
    (e: unknown) =>
      e instanceof TrainingError && /^record 3: assistant message 2 renders empty/.test(e.message),
  );

  // A template that never renders assistant content cannot be masked at all.
  const dropping = Tokenizer.fromBpe(bpe, {
    eosToken: '<|im_end|>',
    padToken: '<pad>',
    chatTemplate:
      "{%- for m in messages -%}{{- '<|im_start|>' + m['role'] + '\\n' + (m['content'] if m['role'] != 'assistant' else '') + '<|im_end|>\\n' -}}{%- endfor -%}",
  });
  await assert.rejects(
    () =>
      trainSft(parseSftConfig({ ...cfg, train_file: 'mem' }), {
        model: CausalLM.random(smallSpec(), 3, dropping),
        train: [chat(1)],
      }),
    (e: unknown) =>
      e instanceof TrainingError &&
      /^record 1: .*cannot locate the content of message 2 \(assistant\)/.test(e.message),
  );
});
