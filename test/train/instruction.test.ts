// Instruction records ({instruction, input, output}) rendered through the configured
// instruction_template: the built-in Alpaca layout, the model's chat template, or a Jinja
// prompt template given in the SFT config; checked through the trainer's eval loss.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { alpacaPrompt } from '../../src/data/convert.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { loadExamples } from '../../src/train/examples.ts';
import { parseSftConfig, trainSft } from '../../src/train/sft.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { directLoss, eos, pairTokens, smallSpec, snapshot, tokenizer } from './tiny.ts';

const colours = ['red', 'blue', 'green'];
const records = Array.from({ length: 20 }, (_, i) => ({
  instruction: `Name the colour of item ${i}.`,
  input: i % 2 === 0 ? `Item ${i} is ${colours[i % 3]}.` : '',
  output: colours[i % 3]!,
}));
const train = records.slice(0, 16);
const evalSet = records.slice(16);
const JINJA = 'Task: {{ instruction }}{% if input %}\nText: {{ input }}{% endif %}\nAnswer:';

/** Trains two steps with the template and returns the final eval loss and the model after. */
async function run(template?: string) {
  const model = CausalLM.random(smallSpec(192), 4, tokenizer);
  let after: CausalLM | undefined;
  const r = await trainSft(
    parseSftConfig({
      model_name_or_path: 'mem',
      train_file: 'mem',
      output_dir: mkdtempSync(join(tmpdir(), 'ik-instr-')),
      learning_rate: 5e-3,
      max_steps: 2,
      per_device_train_batch_size: 4,
      max_length: 192,
      disable_tqdm: true,
      use_worker: false,
      ...(template !== undefined ? { instruction_template: template } : {}),
    }),
    {
      model,
      train,
      eval: evalSet,
      onLog: (l) => {
        if (l.eval_loss !== undefined) after = snapshot(model);
      },
    },
  );
  return { loss: r.evalLoss!, after: after! };
}

test('instruction records through the default Alpaca layout, a Jinja template and the chat template', async () => {
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-4 * b;

  const alpaca = await run();
  const alpacaTokens = evalSet.map((r) =>
    pairTokens(alpacaPrompt(r.instruction, r.input), r.output),
  );
  assert.ok(
    alpacaTokens.every((t) => t.ids.length <= 192),
    'nothing is truncated',
  );
  const wantAlpaca = await directLoss(alpaca.after, alpacaTokens);
  assert.ok(close(alpaca.loss, wantAlpaca), `alpaca ${alpaca.loss} vs ${wantAlpaca}`);

  const jinja = await run(JINJA);
  const byHand = (r: (typeof records)[number]) =>
    `Task: ${r.instruction}${r.input ? `\nText: ${r.input}` : ''}\nAnswer:`;
  assert.equal(
    byHand(evalSet[0]!),
    'Task: Name the colour of item 16.\nText: Item 16 is blue.\nAnswer:',
  );
  const wantJinja = await directLoss(
    jinja.after,
    evalSet.map((r) => pairTokens(byHand(r), r.output)),
  );
  assert.ok(close(jinja.loss, wantJinja), `jinja ${jinja.loss} vs ${wantJinja}`);
  // The same weights scored with the Alpaca prompts give another number: the template is used.
  const other = await directLoss(
    jinja.after,
    evalSet.map((r) => pairTokens(alpacaPrompt(r.instruction, r.input), r.output)),
  );
  assert.ok(!close(jinja.loss, other));

  const chat = await run('chat');
  const asChat = await loadExamples(
    evalSet.map((r) => ({
      messages: [
        { role: 'user', content: r.input ? `${r.instruction}\n\n${r.input}` : r.instruction },
        { role: 'assistant', content: r.output },
      ],
    })),
    tokenizer,
    { eosId: eos },
    tokenizer.chatTemplate,
  );
  const wantChat = await directLoss(
    chat.after,
    asChat.map((e) => ({ ids: e.ids, mask: e.lossMask })),
  );
  assert.ok(close(chat.loss, wantChat), `chat ${chat.loss} vs ${wantChat}`);
});

test('a bad instruction_template is a config error naming the key', () => {
  const base = { model_name_or_path: 'm', train_file: 't', output_dir: 'o' };
  for (const [value, why] of [
    ['alpacca', /unknown instruction template 'alpacca'/],
    ['{{ input }}\nAnswer:', /does not use \{\{ instruction \}\}/],
    ['{{ instruction ', /Jinja syntax error/],
  ] as const) {
    assert.throws(
      () => parseSftConfig({ ...base, instruction_template: value }),
      (e: unknown) =>
        e instanceof ConfigError && e.field === 'instruction_template' && why.test(e.message),
      value,
    );
  }
  assert.equal(parseSftConfig(base).instruction_template, 'alpaca');
});
