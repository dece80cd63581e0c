import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { parseDocument } from 'yaml';
import {
  applyTemplate,
  applyTemplateRaw,
  loadPromptSourceFile,
  parsePromptSourceYaml,
} from '../../src/data/templates/promptsource.ts';
import { DataError } from '../../src/util/errors.ts';
import { PyRandom } from '../../src/util/pyrandom.ts';
import { fixture, noShared, sharedData } from '../helpers/shared.ts';

interface Case {
  template: string;
  name: string;
  example: number;
  seed: number;
  parts?: string[];
  error?: string;
}
interface Fixture {
  dataset: string;
  examples: Record<string, unknown>[];
  cases: Case[];
}

/**
 * Every template in ../shared/data/promptsource, as "<dataset dir>/<template id>", read with the
 * plain YAML parser (the !Template tags left unresolved) rather than our loader, so a template
 * the loader missed would still be expected.
 */
function sharedTemplates(): { datasets: string[]; templates: string[] } {
  const root = sharedData('promptsource');
  const datasets: string[] = [];
  const templates: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'templates.yaml') {
        const dataset = relative(root, dir);
        datasets.push(dataset);
        const doc = parseDocument(readFileSync(p, 'utf8'));
        assert.deepEqual(doc.errors, [], p);
        const t = (doc.toJS() as { templates?: Record<string, unknown> }).templates ?? {};
        for (const id of Object.keys(t)) templates.push(`${dataset}/${id}`);
      }
    }
  };
  walk(root);
  return { datasets: datasets.sort(), templates: templates.sort() };
}

const fixtureDir = fixture('promptsource');
const fixtures = readdirSync(fixtureDir)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(join(fixtureDir, f), 'utf8')) as Fixture);

test('every PromptSource template renders byte-identical to Python Jinja2', {
  skip: noShared,
}, () => {
  const shared = sharedTemplates();
  assert.deepEqual(
    fixtures.map((f) => f.dataset).sort(),
    shared.datasets,
    'one fixture per templates.yaml in shared/data/promptsource (regenerate: python3 scripts/fixtures/promptsource_expected.py)',
  );
  let identical = 0;
  let total = 0;
  const templates = new Set<string>();
  const failures: string[] = [];
  for (const fx of fixtures) {
    const file = loadPromptSourceFile(sharedData('promptsource', fx.dataset, 'templates.yaml'));
    const byId = new Map(file.templates.map((t) => [t.id, t]));
    for (const c of fx.cases) {
      total++;
      const t = byId.get(c.template);
      assert.ok(t, `template ${c.template} of ${fx.dataset} is missing`);
      templates.add(`${fx.dataset}/${c.template}`);
      const example = fx.examples[c.example]!;
      if (c.error !== undefined) {
        assert.throws(
          () => applyTemplateRaw(t, example, { rng: new PyRandom(c.seed) }),
          DataError,
          `${fx.dataset} ${c.name} #${c.example} should fail like Python: ${c.error}`,
        );
        identical++;
        continue;
      }
      let got: string[];
      try {
        got = applyTemplateRaw(t, example, { rng: new PyRandom(c.seed) });
      } catch (e) {
        failures.push(`${fx.dataset} ${c.name} #${c.example}: threw ${(e as Error).message}`);
        continue;
      }
      if (JSON.stringify(got) === JSON.stringify(c.parts)) identical++;
      else
        failures.push(
          `${fx.dataset} ${c.name} #${c.example}:\n  want ${JSON.stringify(c.parts)}\n  got  ${JSON.stringify(got)}`,
        );
    }
  }
  assert.deepEqual(
    [...templates].sort(),
    shared.templates,
    'the fixtures cover every template in shared/data/promptsource (regenerate them)',
  );
  assert.deepEqual(failures.slice(0, 5), [], `${identical}/${total} identical`);
  assert.equal(identical, total);
});

test('a template whose {% if %} excludes the example yields "skipped", not an empty example', {
  skip: noShared,
}, () => {
  const file = loadPromptSourceFile(
    sharedData('promptsource', 'adversarial_qa', 'adversarialQA', 'templates.yaml'),
  );
  const t = file.templates.find((x) => x.name === 'based_on')!;
  const ex = {
    id: 'x',
    title: 'T',
    context: 'Cats sleep a lot.',
    question: 'Who sleeps?',
    answers: { text: ['Cats'], answer_start: [0] },
    metadata: { split: 'test', model_in_the_loop: 'BERT' },
  };
  const r = applyTemplate(t, ex);
  assert.equal(r.kind, 'skipped');
  const ok = applyTemplate(t, { ...ex, metadata: { split: 'train', model_in_the_loop: 'BERT' } });
  assert.equal(ok.kind, 'example');
  assert.ok(ok.kind === 'example' && ok.target === 'Cats');
});

test('answer choices are rendered and split', { skip: noShared }, () => {
  const file = loadPromptSourceFile(
    sharedData('promptsource', 'super_glue', 'rte', 'templates.yaml'),
  );
  const t = file.templates[0]!;
  const r = applyTemplate(t, { premise: 'P.', hypothesis: 'H', idx: 0, label: 1 });
  assert.ok(r.kind === 'example');
  assert.deepEqual(r.answerChoices, ['Yes', 'No']);
  assert.equal(r.target, 'No');
});

test('bad input: reserved answer_choices key, unknown tag, missing jinja, syntax error', {
  skip: noShared,
}, () => {
  const file = loadPromptSourceFile(sharedData('promptsource', 'ag_news', 'templates.yaml'));
  assert.throws(
    () => applyTemplate(file.templates[0]!, { text: 'x', label: 0, answer_choices: [] }),
    (e: unknown) => e instanceof DataError && /reserved key 'answer_choices'/.test(e.message),
  );
  assert.throws(
    () => parsePromptSourceYaml('dataset: x\ntemplates:\n  a: !Nope\n    jinja: hi\n', 'bad.yaml'),
    (e: unknown) => e instanceof DataError && /bad\.yaml/.test(e.message) && /Nope/.test(e.message),
  );
  assert.throws(
    () =>
      parsePromptSourceYaml(
        'dataset: x\ntemplates:\n  abc: !Template\n    name: n\n    id: abc\n    reference: r\n',
        'nojinja.yaml',
      ),
    (e: unknown) =>
      e instanceof DataError && e.file === 'nojinja.yaml' && e.field === 'templates.abc.jinja',
  );
  const broken = parsePromptSourceYaml(
    'dataset: x\ntemplates:\n  t1: !Template\n    name: broken\n    id: t1\n    reference: r\n    jinja: "{% if x %}oops ||| y"\n',
    'broken.yaml',
  );
  assert.throws(
    () => applyTemplate(broken.templates[0]!, { x: 1 }),
    (e: unknown) =>
      e instanceof DataError && /broken\.yaml/.test(e.message) && /t1/.test(e.message),
  );
});
