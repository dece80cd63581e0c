// `instructkit data render`: renders the built-in collection, a FLAN-style template set, a
// Super-NaturalInstructions task or a PromptSource templates.yaml over records, to JSONL
// TaskExample records. Flag parsing only; the rendering lives in src/data.
import type { Command } from 'commander';
import { builtinCollection, renderCollection } from '../data/collection/index.ts';
import type { TaskExample } from '../data/records.ts';
import type { Variant } from '../data/templates/flan.ts';
import { loadNatInstTask, natInstExamples } from '../data/templates/natinst.ts';
import { applyTemplate, loadPromptSourceFile } from '../data/templates/promptsource.ts';
import { ConfigError } from '../util/errors.ts';
import { readJsonl, writeJsonl } from '../util/jsonl.ts';
import { PyRandom } from '../util/pyrandom.ts';

interface RenderFlags {
  builtin?: boolean;
  natinst?: string;
  promptsource?: string;
  records?: string;
  variants: string;
  categories?: string;
  seed: number;
  positive: number;
  negative: number;
  explanation?: boolean;
  out: string;
}

const VARIANTS = ['zero_shot', 'few_shot', 'options', 'cot', 'inversion'];

export function registerDataRender(data: Command): void {
  data
    .command('render')
    .description(
      'Render the built-in collection, a Super-NI task or PromptSource templates to JSONL task examples',
    )
    .option('--builtin', 'the built-in task collection')
    .option('--natinst <task.json>', 'a Super-NaturalInstructions task file')
    .option('--promptsource <templates.yaml>', 'a PromptSource templates.yaml (with --records)')
    .option('--records <file.jsonl>', 'dataset rows (JSONL) for --promptsource')
    .option(
      '--variants <list>',
      `built-in variants, comma-separated (${VARIANTS.join(', ')})`,
      'zero_shot',
    )
    .option('--categories <list>', 'built-in categories to render (default all)')
    .option('--seed <n>', 'random seed', (v) => Number(v), 0)
    .option('--positive <k>', 'Super-NI positive examples', (v) => Number(v), 2)
    .option('--negative <k>', 'Super-NI negative examples', (v) => Number(v), 0)
    .option('--explanation', 'Super-NI: include explanations')
    .requiredOption('--out <file.jsonl>', 'where to write the records')
    .action(async (f: RenderFlags) => {
      const sources = [f.builtin, f.natinst, f.promptsource].filter(Boolean).length;
      if (sources !== 1)
        throw new ConfigError('give exactly one of --builtin, --natinst, --promptsource', {
          field: 'source',
        });
      let out: TaskExample[] = [];
      let skipped = 0;
      if (f.builtin) {
        const variants = f.variants.split(',').map((v) => v.trim());
        for (const v of variants)
          if (!VARIANTS.includes(v))
            throw new ConfigError(`unknown variant '${v}'`, { field: 'variants' });
        out = renderCollection(builtinCollection({ seed: f.seed }), {
          seed: f.seed,
          variants: variants as Variant[],
          ...(f.categories ? { categories: f.categories.split(',').map((c) => c.trim()) } : {}),
        });
      } else if (f.natinst) {
        out = natInstExamples(loadNatInstTask(f.natinst), {
          seed: f.seed,
          positive: f.positive,
          negative: f.negative,
          explanation: f.explanation ?? false,
        });
      } else {
        if (!f.records)
          throw new ConfigError('--promptsource needs --records', { field: 'records' });
        const file = loadPromptSourceFile(f.promptsource!);
        let i = 0;
        for await (const { value } of readJsonl(f.records)) {
          for (const t of file.templates) {
            const r = applyTemplate(t, value as Record<string, unknown>, {
              rng: new PyRandom(f.seed + i),
            });
            if (r.kind === 'skipped') skipped++;
            else
              out.push({
                task: file.dataset,
                template: t.name,
                input: r.input,
                target: r.target,
                references: r.targets,
                ...(r.answerChoices ? { choices: r.answerChoices } : {}),
              });
          }
          i++;
        }
      }
      const n = await writeJsonl(f.out, out);
      const byTask = new Map<string, number>();
      for (const e of out) byTask.set(e.task, (byTask.get(e.task) ?? 0) + 1);
      process.stdout.write(
        `wrote ${n} examples to ${f.out}${skipped ? ` (${skipped} template applications skipped by their own conditions)` : ''}\n`,
      );
      for (const [t, k] of [...byTask].slice(0, 40))
        process.stdout.write(`  ${t.padEnd(32)} ${k}\n`);
    });
}
