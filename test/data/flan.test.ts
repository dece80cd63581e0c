import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';
import {
  builtinCollection,
  categoryTable,
  INVENTED_CATEGORY,
  knowledgeCorpus,
  renderCollection,
  renderTask,
  splitFacts,
  TEMPLATES_PATH,
} from '../../src/data/collection/index.ts';
import {
  fillPattern,
  parseTemplateSet,
  renderVariant,
  roundRobinTemplates,
} from '../../src/data/templates/flan.ts';
import { formatOptions, formatOptionsRandom } from '../../src/data/templates/options.ts';
import { DataError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

const YAML = `
generic:
  - { input: "What is the {relation} {x}?", target: "{y}" }
generic_inversions:
  - { input: "Ask about {x}; the answer is {y}.", target: "What is the {relation} {x}?" }
generic_cot:
  - { input: "{input} Think.", target: "{rationale} So: {y}." }
tasks:
  capital_of:
    category: geo
    relation: capital of
    patterns:
      - { input: "Capital of {x}?", target: "{y}" }
`;

test('variants render exact strings', () => {
  const set = parseTemplateSet(YAML, 't.yaml');
  const t = set.tasks.get('capital_of')!;
  assert.equal(t.patterns.length, 2);
  const fields = {
    x: 'France',
    y: 'Paris',
    rationale: 'The capital of France is Paris.',
    options: ['Rome', 'Paris'],
  };
  const rng = new Rng(1);
  assert.deepEqual(renderVariant(t, fields, { variant: 'zero_shot', template: 1, rng }), {
    input: 'What is the capital of France?',
    target: 'Paris',
    template: 'capital_of:zero_shot:1',
  });
  assert.equal(
    renderVariant(t, fields, { variant: 'cot', template: 0, rng }).input,
    'Capital of France? Think.',
  );
  assert.equal(
    renderVariant(t, fields, { variant: 'cot', template: 0, rng }).target,
    'The capital of France is Paris. So: Paris.',
  );
  assert.deepEqual(renderVariant(t, fields, { variant: 'inversion', template: 0, rng }), {
    input: 'Ask about France; the answer is Paris.',
    target: 'What is the capital of France?',
    template: 'capital_of:inversion:0',
  });
  const fs = renderVariant(t, fields, {
    variant: 'few_shot',
    template: 0,
    rng,
    exemplars: [
      { x: 'Italy', y: 'Rome' },
      { x: 'Peru', y: 'Lima' },
    ],
    fewShot: {
      k: 2,
      inputs_prefix: 'Q: ',
      targets_prefix: 'A: ',
      x_y_delimiter: '\n',
      example_separator: '\n\n',
    },
  });
  assert.equal(
    fs.input,
    'Q: Capital of Italy?\nA: Rome\n\nQ: Capital of Peru?\nA: Lima\n\nQ: Capital of France?',
  );
  const opt = renderVariant(t, fields, {
    variant: 'options',
    template: 0,
    rng,
    options: { field: 'options', style: 'deterministic' },
  });
  assert.equal(opt.input, 'Capital of France?\n\nOPTIONS:\n- Rome\n- Paris');
  assert.equal(opt.target, 'Paris');
});

test('randomised options rewrite the target to a letter or number marker', () => {
  assert.deepEqual(formatOptions(['a', 'b'], 'b'), {
    text: 'OPTIONS:\n- a\n- b',
    target: 'b',
    markers: ['-', '-'],
  });
  let rewritten = 0;
  let plain = 0;
  for (let s = 0; s < 200; s++) {
    const f = formatOptionsRandom(['red', 'blue', 'green'], 'blue', new Rng(s));
    assert.equal(f.markers.length, 3);
    if (f.target === 'blue') plain++;
    else {
      rewritten++;
      assert.match(f.target, /^(\(B\)|B\)?|\(b\)|2|\(2\)|\[2\])$/, f.target);
      assert.ok(f.text.includes(f.markers[1]!));
    }
  }
  assert.ok(rewritten > 50 && plain > 20);
  assert.deepEqual(
    formatOptionsRandom(['x', 'y'], 'y', new Rng(3)),
    formatOptionsRandom(['x', 'y'], 'y', new Rng(3)),
  );
});

test('round-robin template assignment drops the remainder', () => {
  assert.deepEqual(roundRobinTemplates(7, 3), [0, 1, 2, 0, 1, 2]);
});

test('bad template YAML: unknown key and a missing field name the file and field', () => {
  assert.throws(
    () => parseTemplateSet('tasks:\n  t:\n    category: c\n    patern: []\n', 'bad.yaml'),
    (e: unknown) =>
      e instanceof DataError &&
      e.file === 'bad.yaml' &&
      e.field === 'tasks.t.patern' &&
      e.line === 4,
  );
  assert.throws(
    () => fillPattern('What is {colour}?', { x: 1 }, { file: 'f.yaml', template: 't/zero_shot/0' }),
    (e: unknown) =>
      e instanceof DataError &&
      e.field === 'colour' &&
      /t\/zero_shot\/0/.test(e.message) &&
      e.file === 'f.yaml',
  );
});

test('the built-in collection: ~30 tasks in 8 categories, >= 5 templates each, deterministic', () => {
  const c = builtinCollection({ seed: 3 });
  assert.ok(c.tasks.length >= 28 && c.tasks.length <= 32);
  assert.equal(new Set(Object.values(categoryTable(c))).size, 8);
  for (const t of c.tasks) {
    assert.ok(
      t.templates.patterns.length >= 5,
      `${t.name} has ${t.templates.patterns.length} templates`,
    );
    assert.ok(t.facts.length >= 7);
    for (const f of t.facts)
      assert.ok(t.answers.includes(f.y), `${t.name}: ${f.y} in its answer space`);
  }
  // Each task's own wording (besides the generic patterns every relation task shares): at least
  // five instructions written for it, none shared with another task.
  const own = (
    parse(readFileSync(TEMPLATES_PATH, 'utf8')) as {
      tasks: Record<string, { patterns: { input: string }[] }>;
    }
  ).tasks;
  const seen = new Map<string, string>();
  for (const t of c.tasks) {
    const mine = own[t.name]?.patterns ?? [];
    assert.ok(mine.length >= 5, `${t.name} has ${mine.length} templates of its own`);
    for (const p of mine) {
      assert.ok(!seen.has(p.input), `${t.name} repeats ${seen.get(p.input)}'s "${p.input}"`);
      seen.set(p.input, t.name);
    }
  }
  const a = renderCollection(c, {
    variants: ['zero_shot', 'options', 'cot', 'inversion', 'few_shot'],
  });
  assert.deepEqual(
    renderCollection(builtinCollection({ seed: 3 }), {
      variants: ['zero_shot', 'options', 'cot', 'inversion', 'few_shot'],
    }),
    a,
  );
  assert.notDeepEqual(renderCollection(builtinCollection({ seed: 4 })), renderCollection(c));
  assert.ok(a.some((e) => e.id!.includes('/options/') && e.choices?.length === 4));
});

test('every fact is stated in the knowledge corpus, and the eval split holds out facts', () => {
  const c = builtinCollection({ seed: 0 });
  const text = new Set(knowledgeCorpus(c));
  for (const t of c.tasks)
    for (const f of t.facts) assert.ok(text.has(f.rationale), `${t.name}: ${f.rationale}`);
  for (const t of c.tasks) {
    const { train, eval: ev } = splitFacts(t, 0.2, 0);
    assert.equal(train.length + ev.length, t.facts.length);
    assert.ok(!ev.some((f) => train.includes(f)));
  }
  const zs = renderTask(c, c.tasks[0]!, { variant: 'zero_shot', seed: 1, roundRobin: true });
  assert.deepEqual(
    zs.slice(0, 3).map((e) => e.template),
    ['capital_of:zero_shot:0', 'capital_of:zero_shot:1', 'capital_of:zero_shot:2'],
  );
});

test('invented relations: extra generic-only tasks over things, stated in the knowledge corpus', () => {
  const plain = builtinCollection({ seed: 2 });
  const c = builtinCollection({ seed: 2, sizes: { relations: 3, relation_facts: 5 } });
  // The rest of the world is unchanged by asking for relations.
  assert.deepEqual(c.lexicon.things, plain.lexicon.things);
  assert.deepEqual(c.lexicon.adjectives, plain.lexicon.adjectives);
  const inv = c.tasks.filter((t) => t.category === INVENTED_CATEGORY);
  assert.equal(inv.length, 3);
  assert.equal(c.tasks.length, plain.tasks.length + 3);
  const text = new Set(knowledgeCorpus(c));
  const words = new Set(
    [...plain.lexicon.things.flatMap((t) => [t.name, t.plural])].concat(
      plain.lexicon.adjectives.flatMap((a) => [a.word, a.opposite, a.synonym]),
    ),
  );
  for (const t of inv) {
    assert.equal(t.facts.length, 5);
    assert.equal(t.templates.patterns.length, 6, 'the generic patterns only');
    assert.ok(t.templates.patterns.every((p) => p.input.includes(t.templates.relation!)));
    for (const f of t.facts) {
      assert.ok(text.has(f.rationale), f.rationale);
      assert.ok(!words.has(f.y), `${f.y} is a new word`);
    }
    const [e] = renderTask(c, t, { variant: 'zero_shot', seed: 0, roundRobin: true });
    assert.equal(e!.input, `What is the ${t.templates.relation} ${t.facts[0]!.x}?`);
  }
});

test('fillPattern looks fields up as own properties: inherited names are missing fields', () => {
  // `{constructor}` used to render Object's function source, `{toString}` likewise.
  for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf']) {
    assert.throws(
      () => fillPattern(`Q: {${name}}`, { x: 'France' }, { template: 't/zero_shot/0' }),
      (e) => e instanceof DataError && e.field === name && /t\/zero_shot\/0/.test(e.message),
      name,
    );
  }
  // An example that really has such a field still renders it.
  assert.equal(fillPattern('{constructor}', { constructor: 'Ada' }), 'Ada');
});
