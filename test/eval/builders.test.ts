import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodeNatInst, loadNatInstTask } from '../../src/data/templates/natinst.ts';
import type { GenerationRequest, LmBackend } from '../../src/eval/backend.ts';
import { superNiTask, templateSetTask } from '../../src/eval/builders.ts';
import { round4 } from '../../src/eval/metrics.ts';
import { evaluateTask } from '../../src/eval/run.ts';
import { buildContext, docTarget, loadTaskFile, type Task } from '../../src/eval/task.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { noShared, sharedData } from '../helpers/shared.ts';

const EXCERPTS = [
  'task1146_country_capital.EXCERPT.json',
  'task1159_bard_analogical_reasoning_containers.EXCERPT.json',
];

/** A generation backend that answers from a table keyed by prompt (the model is not under test). */
function tableBackend(answers: Map<string, string>, seen: GenerationRequest[] = []): LmBackend {
  return {
    name: 'table',
    supportsLoglikelihood: false,
    loglikelihood: async () => {
      throw new Error('not used');
    },
    generate: async (reqs) => {
      seen.push(...reqs);
      return reqs.map((r) => {
        const a = answers.get(r.context);
        if (a === undefined) throw new Error(`no scripted answer for ${r.context.slice(-40)}`);
        return a;
      });
    },
  };
}

interface FixtureRow {
  task: string;
  id: string;
  prediction: string;
  references: string[];
  exact_match: boolean;
  rougeL: number;
}

test('superNiTask: Tk-Instruct prompts, every reference, EM + ROUGE-L equal to the official script on both excerpt tasks', {
  skip: noShared,
}, async () => {
  const lines = readFileSync(sharedData('natural-instructions', 'eval_fixture.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const summary = lines.pop() as {
    aggregate: { exact_match: number; rougeL: number };
    grouped_by_task: Record<string, number>;
  };
  const rows = lines as FixtureRow[];
  const pooled = { em: [] as number[], rl: [] as number[] };
  let checked = 0;
  for (const name of EXCERPTS) {
    const file = sharedData('natural-instructions', name);
    const task = superNiTask(file);
    const ni = loadNatInstTask(file);
    assert.equal(task.config.task, ni.name);
    assert.equal(task.config.category, ni.categories[0]);
    assert.equal(task.docs.length, ni.instances.length);
    assert.deepEqual(
      task.config.metric_list.map((m) => m.metric),
      ['exact_match', 'rougeL'],
    );
    task.docs.forEach((d, i) => {
      assert.equal(buildContext(task, i, d), encodeNatInst(ni, ni.instances[i]!.input));
      assert.deepEqual(docTarget(task, d).texts, ni.instances[i]!.output);
    });
    if (name.startsWith('task1146')) {
      const c = buildContext(task, 0, task.docs[0]!);
      assert.ok(
        c.startsWith(
          'Definition: In this task, you are given a country name and you need to return the capital city of the given country.\n\n' +
            ' Positive Example 1 -\nInput: United States.\n Output: Washington.\n\n' +
            ' Positive Example 2 -\nInput: India.\n Output: New Delhi.\n\n',
        ),
        c,
      );
      assert.ok(c.endsWith('Now complete the following example -\nInput: Afghanistan.\nOutput: '));
    }

    // The fixture has several predictions per instance: round k scores the k-th of each.
    const mine = rows.filter((r) => r.task === ni.name);
    assert.ok(mine.length > 12);
    const rounds: FixtureRow[][] = [];
    const seenIds = new Map<string, number>();
    for (const r of mine) {
      const k = seenIds.get(r.id) ?? 0;
      seenIds.set(r.id, k + 1);
      if (!rounds[k]) rounds[k] = [];
      rounds[k]!.push(r);
    }
    const perTask = { em: [] as number[], rl: [] as number[] };
    for (const round of rounds) {
      const byId = new Map(round.map((r) => [r.id, r]));
      const sub: Task = { ...task, docs: task.docs.filter((d) => byId.has(d.id as string)) };
      const answers = new Map(
        sub.docs.map((d, i) => [buildContext(sub, i, d), byId.get(d.id as string)!.prediction]),
      );
      const reqs: GenerationRequest[] = [];
      const res = await evaluateTask(sub, tableBackend(answers, reqs));
      assert.deepEqual(reqs[0]!.until, [], 'Tk-Instruct generates until EOS');
      assert.equal(reqs[0]!.maxTokens, 128);
      res.examples.forEach((e, i) => {
        const want = byId.get(sub.docs[i]!.id as string)!;
        assert.deepEqual(e.targets, want.references);
        assert.equal(
          e.metrics.exact_match,
          Number(want.exact_match),
          `EM ${want.id} ${e.prediction}`,
        );
        assert.equal(e.metrics.rougeL, want.rougeL, `rougeL ${want.id} ${e.prediction}`);
        perTask.em.push(e.metrics.exact_match!);
        perTask.rl.push(e.metrics.rougeL!);
        checked++;
      });
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      assert.equal(res.metrics.exact_match, mean(res.examples.map((e) => e.metrics.exact_match!)));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.equal(
      round4(100 * mean(perTask.em)),
      summary.grouped_by_task[`exact_match_for_${ni.name}`],
    );
    assert.equal(round4(100 * mean(perTask.rl)), summary.grouped_by_task[`rougeL_for_${ni.name}`]);
    pooled.em.push(...perTask.em);
    pooled.rl.push(...perTask.rl);
  }
  assert.equal(checked, rows.length, 'every fixture row was scored through the task');
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.equal(round4(100 * mean(pooled.em)), summary.aggregate.exact_match);
  assert.equal(round4(100 * mean(pooled.rl)), summary.aggregate.rougeL);
});

test('a task YAML refers to a Super-NI file with `dataset: {super_ni: ...}`; bad specs name the field', {
  skip: noShared,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-ni-yaml-'));
  const file = sharedData('natural-instructions', EXCERPTS[1]!);
  const yaml = join(dir, 'ni.yaml');
  writeFileSync(
    yaml,
    `task: analogies\ndataset:\n  super_ni: ${JSON.stringify(file)}\n  positive: 1\nlimit: 3\ngeneration_kwargs:\n  until: ["\\n"]\n`,
  );
  const t = loadTaskFile(yaml);
  const direct = superNiTask(file, { positive: 1 });
  assert.equal(t.config.task, 'analogies');
  assert.equal(t.config.limit, 3);
  assert.deepEqual(t.config.generation_kwargs.until, ['\n']);
  assert.equal(t.config.generation_kwargs.max_gen_toks, 128, 'unset kwargs keep the built ones');
  assert.equal(t.docs.length, direct.docs.length);
  assert.equal(buildContext(t, 4, t.docs[4]!), buildContext(direct, 4, direct.docs[4]!));
  assert.ok(!buildContext(t, 0, t.docs[0]!).includes('Positive Example 2'));

  const bad = (body: string, field: string) => {
    const p = join(dir, `bad-${field}.yaml`);
    writeFileSync(p, body);
    assert.throws(
      () => loadTaskFile(p),
      (e: unknown) => e instanceof ConfigError && e.field === field && e.file === p,
      field,
    );
  };
  bad(
    `task: x\ndataset:\n  super_ni: ${JSON.stringify(file)}\n  positives: 2\n`,
    'dataset.positives',
  );
  bad('task: x\ndataset:\n  jsonl: foo.jsonl\n', 'dataset');
  bad(`task: x\ndataset:\n  super_ni: 3\n`, 'dataset.super_ni');
  bad(
    `task: x\ndataset_path: d.jsonl\ndataset:\n  super_ni: ${JSON.stringify(file)}\n`,
    'dataset_path',
  );
  bad(`task: x\ndataset:\n  super_ni: ${JSON.stringify(file)}\nnum_shot: 1\n`, 'num_shot');
});

const TEMPLATES = `tasks:
  capital_of:
    category: geography
    patterns:
      - { input: "Which city is the capital of {x}?", target: "{y}" }
      - { input: "{x} has a capital. Name it.", target: "{y}" }
    cot:
      - { input: "{input} Think first.", target: "{rationale} So the answer is {y}." }
  colour_of:
    category: things
    patterns:
      - { input: "What colour is {x}?", target: "{y}" }
`;
const FACTS = [
  { x: 'Freedonia', y: 'Fredville', rationale: 'Fredville is the capital of Freedonia.' },
  { x: 'Sylvania', y: 'Sylvan', rationale: 'Sylvan is the capital of Sylvania.' },
  { x: 'Ruritania', y: 'Strelsau', rationale: 'Strelsau is the capital of Ruritania.' },
].map((f, _i, all) => ({ ...f, options: all.map((g) => g.y).reverse() }));

test('templateSetTask: FLAN template set tasks in zero-shot, CoT and options variants, and from YAML', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ik-tpl-'));
  const tplFile = join(dir, 'templates.yaml');
  writeFileSync(tplFile, TEMPLATES);
  writeFileSync(join(dir, 'facts.jsonl'), `${FACTS.map((f) => JSON.stringify(f)).join('\n')}\n`);

  const zs = templateSetTask(tplFile, 'capital_of', FACTS);
  assert.equal(zs.config.task, 'capital_of_zero_shot');
  assert.equal(zs.config.category, 'geography');
  // Round robin: document i gets template i mod 2.
  assert.deepEqual(
    zs.docs.map((d, i) => buildContext(zs, i, d)),
    [
      'Which city is the capital of Freedonia?',
      'Sylvania has a capital. Name it.',
      'Which city is the capital of Ruritania?',
    ],
  );
  const answers = new Map([
    ['Which city is the capital of Freedonia?', ' fredville.'],
    ['Sylvania has a capital. Name it.', 'Strelsau'],
    ['Which city is the capital of Ruritania?', 'Strelsau'],
  ]);
  const r = await evaluateTask(zs, tableBackend(answers));
  assert.deepEqual(
    r.examples.map((e) => e.metrics.exact_match),
    [1, 0, 1],
  );

  // CoT: the prompt wraps the zero-shot input; the answer is extracted and scored alone.
  const cot = templateSetTask(tplFile, 'capital_of', FACTS, { variant: 'cot' });
  const c0 = buildContext(cot, 0, cot.docs[0]!);
  assert.equal(c0, 'Which city is the capital of Freedonia? Think first.');
  assert.deepEqual(docTarget(cot, cot.docs[0]!).texts, ['Fredville']);
  assert.equal(cot.config.answer_extraction, 'bbh');
  const cr = await evaluateTask(
    { ...cot, docs: cot.docs.slice(0, 1) },
    tableBackend(
      new Map([[c0, 'Fredville is the capital of Freedonia. So the answer is Fredville.']]),
    ),
  );
  assert.equal(cr.examples[0]!.prediction, 'Fredville');
  assert.equal(cr.metrics.exact_match, 1);

  // Options scored by log-likelihood over the choices.
  const mc = templateSetTask(tplFile, 'capital_of', FACTS, {
    variant: 'options',
    template: 0,
    score_choices: true,
  });
  assert.equal(mc.config.output_type, 'multiple_choice');
  assert.equal(
    buildContext(mc, 1, mc.docs[1]!),
    'Which city is the capital of Sylvania?\n\nOPTIONS:\n- Strelsau\n- Sylvan\n- Fredville',
  );
  assert.equal(docTarget(mc, mc.docs[1]!).index, 1);

  // The same through a task YAML.
  const yaml = join(dir, 'cap.yaml');
  writeFileSync(
    yaml,
    'dataset:\n  template_set: templates.yaml\n  name: capital_of\n  docs: facts.jsonl\n  template: 1\nlimit: 2\n',
  );
  const fromYaml = loadTaskFile(yaml);
  assert.equal(fromYaml.config.limit, 2);
  assert.equal(buildContext(fromYaml, 0, fromYaml.docs[0]!), 'Freedonia has a capital. Name it.');
  const badName = join(dir, 'bad.yaml');
  writeFileSync(
    badName,
    'dataset:\n  template_set: templates.yaml\n  name: capitol_of\n  docs: facts.jsonl\n',
  );
  assert.throws(
    () => loadTaskFile(badName),
    (e: unknown) => e instanceof ConfigError && e.field === 'name' && /capitol_of/.test(e.message),
  );
  assert.throws(
    () => templateSetTask(tplFile, 'capital_of', FACTS, { template: 5 }),
    (e: unknown) => e instanceof ConfigError && e.field === 'template',
  );
});
