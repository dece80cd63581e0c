// `instructkit data render`: renders the built-in collection, a Super-NaturalInstructions task
// or a PromptSource templates.yaml over dataset rows, to TaskExample records. Flag parsing
// only; the rendering is data/render.ts. Progress goes to stderr, the summary to stdout.
import { type Command, InvalidArgumentError } from 'commander';
import { RENDER_VARIANTS, type RenderSource, renderFile } from '../data/render.ts';
import { renderLines } from '../data/summaries.ts';
import { ConfigError } from '../util/errors.ts';
import { progress } from '../util/progress.ts';

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
  skipInvalid?: boolean;
  json?: boolean;
  quiet?: boolean;
}

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError('expected a non-negative integer');
  return n;
};
const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function registerDataRender(data: Command): void {
  data
    .command('render')
    .description(
      'Render the built-in collection, a Super-NI task or PromptSource templates to task examples',
    )
    .option('--builtin', 'the built-in task collection')
    .option('--natinst <task.json>', 'a Super-NaturalInstructions task file')
    .option('--promptsource <templates.yaml>', 'a PromptSource templates.yaml (with --records)')
    .option('--records <file.jsonl>', 'dataset rows (JSONL) for --promptsource')
    .option(
      '--variants <list>',
      `built-in variants, comma-separated (${RENDER_VARIANTS.join(', ')})`,
      'zero_shot',
    )
    .option('--categories <list>', 'built-in categories to render (default all)')
    .option('--seed <n>', 'random seed', int, 0)
    .option('--positive <k>', 'Super-NI positive examples', int, 2)
    .option('--negative <k>', 'Super-NI negative examples', int, 0)
    .option('--explanation', 'Super-NI: include explanations')
    .requiredOption('--out <file>', 'where to write the records (.jsonl, .json, .parquet)')
    .option(
      '--skip-invalid',
      '--records: count and report bad rows and failed template applications instead of stopping',
    )
    .option('--json', 'print the summary as JSON')
    .option('-q, --quiet', 'no progress output')
    .action(async (f: RenderFlags) => {
      const given = [f.builtin, f.natinst, f.promptsource].filter(Boolean).length;
      if (given !== 1)
        throw new ConfigError('give exactly one of --builtin, --natinst, --promptsource', {
          field: 'source',
        });
      let source: RenderSource;
      if (f.builtin)
        source = {
          builtin: {
            seed: f.seed,
            variants: list(f.variants),
            ...(f.categories ? { categories: list(f.categories) } : {}),
          },
        };
      else if (f.natinst)
        source = {
          natinst: {
            path: f.natinst,
            seed: f.seed,
            encoding: {
              positive: f.positive,
              negative: f.negative,
              explanation: f.explanation ?? false,
            },
          },
        };
      else {
        if (!f.records)
          throw new ConfigError('--promptsource needs --records', { field: 'records' });
        source = { promptsource: { path: f.promptsource!, records: f.records, seed: f.seed } };
      }
      const r = await renderFile({
        source,
        output: f.out,
        skipInvalid: f.skipInvalid,
        progress: progress({
          label: 'render',
          unit: 'promptsource' in source ? 'rows' : 'examples',
          enabled: !f.quiet,
        }),
      });
      if (f.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else for (const l of renderLines(r)) process.stdout.write(`${l}\n`);
    });
}
