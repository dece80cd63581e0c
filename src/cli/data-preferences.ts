// `instructkit data preferences`: preference pairs or K-way rankings from the built-in
// collection (data/collection/preference.ts), written as TRL records. Flag parsing only.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { builtinCollection } from '../data/collection/index.ts';
import {
  collectionPreferences,
  REJECTED_KINDS,
  type RejectedKind,
} from '../data/collection/preference.ts';
import { writeRecords } from '../data/io.ts';
import { ConfigError } from '../util/errors.ts';

interface Flags {
  out: string;
  seed: number;
  format: 'pairs' | 'ranking';
  categories?: string;
  exclude?: string;
  facts: 'all' | 'train' | 'eval';
  evalFraction: number;
  rejected?: string;
  templatesPerFact: number;
  json?: boolean;
  quiet?: boolean;
}

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError('expected a non-negative integer');
  return n;
};
const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
};
const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function registerDataPreferences(data: Command): void {
  data
    .command('preferences')
    .description(
      'Preference pairs or K-way rankings from the built-in collection (right answer > near-miss > wrong fact > off-format)',
    )
    .requiredOption('--out <file>', 'where to write the records (.jsonl, .json, .parquet)')
    .option('--seed <n>', 'random seed (the world and every choice)', int, 0)
    .addOption(
      new Option(
        '--format <f>',
        'pairs {prompt, chosen, rejected} or ranking {prompt, completions, ranking}',
      )
        .choices(['pairs', 'ranking'])
        .default('pairs'),
    )
    .option('--categories <list>', 'only these categories')
    .option('--exclude <list>', 'leave these categories out (e.g. antonyms,sequences)')
    .addOption(
      new Option(
        '--facts <which>',
        "facts of each task: all, or the demo split's train / eval side",
      )
        .choices(['all', 'train', 'eval'])
        .default('all'),
    )
    .option('--eval-fraction <x>', 'share of facts on the eval side', num, 0.2)
    .option('--rejected <list>', `worse completions, in rank order (${REJECTED_KINDS.join(', ')})`)
    .option('--templates-per-fact <n>', 'prompts rendered per fact', int, 1)
    .option('--json', 'print the summary as JSON')
    .option('-q, --quiet', 'print nothing on success')
    .action(async (f: Flags) => {
      const rejected = f.rejected ? list(f.rejected) : undefined;
      for (const r of rejected ?? [])
        if (!(REJECTED_KINDS as readonly string[]).includes(r))
          throw new ConfigError(
            `unknown rejected kind '${r}'`,
            {
              field: 'rejected',
            },
            { hint: `use ${REJECTED_KINDS.join(', ')}` },
          );
      const c = builtinCollection({ seed: f.seed });
      const recs = collectionPreferences(c, {
        seed: f.seed,
        format: f.format,
        facts: f.facts,
        evalFraction: f.evalFraction,
        templatesPerFact: f.templatesPerFact,
        ...(f.categories ? { categories: list(f.categories) } : {}),
        ...(f.exclude ? { excludeCategories: list(f.exclude) } : {}),
        ...(rejected ? { rejected: rejected as RejectedKind[] } : {}),
      });
      const n = await writeRecords(
        f.out,
        recs.map((r) => r.record),
        { kind: f.format === 'ranking' ? 'ranking' : 'preference' },
      );
      const cats = [...new Set(recs.map((r) => r.category))];
      const summary = { out: f.out, records: n, format: f.format, categories: cats };
      if (f.quiet) return;
      if (f.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      else
        process.stdout.write(
          `wrote ${n} ${f.format === 'ranking' ? 'rankings' : 'pairs'} to ${f.out} (categories: ${cats.join(', ')})\n`,
        );
    });
}
