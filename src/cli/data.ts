// `instructkit data convert | mix | split | dedup | decontaminate | stats | inspect`: flag parsing
// and printing only; each command calls one job from src/data (jobs.ts, mix-files.ts,
// split-files.ts). Progress goes to stderr, the summary (or --json) to stdout.
import { dirname, isAbsolute, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { z } from 'zod';
import { mergeConfig, parseConfig, readConfigFile } from '../data/config.ts';
import { DecontaminateConfig } from '../data/decontaminate.ts';
import { DedupConfig } from '../data/dedup.ts';
import { RECORD_KINDS } from '../data/io.ts';
import { convertFile, decontaminateFile, dedupFile, fileStats, inspectFile } from '../data/jobs.ts';
import { MixFilesConfig, mixFiles } from '../data/mix-files.ts';
import { SplitFilesConfig, splitFile } from '../data/split-files.ts';
import type { Summary } from '../data/stats.ts';
import { readTaskTable } from '../data/task-lists.ts';
import { ConfigError } from '../util/errors.ts';
import { type Progress, progress } from '../util/progress.ts';

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('expected an integer');
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
const collect = (v: string, prev: string[] = []) => [...prev, v];

interface Common {
  json?: boolean;
  quiet?: boolean;
  skipInvalid?: boolean;
  kind?: string;
}

function bar(o: Common, label: string, unit = 'records'): Progress {
  return progress({ label, unit, enabled: !o.quiet });
}

const out = (s: string) => process.stdout.write(`${s}\n`);
const fmt = (n: number) => n.toLocaleString('en-US');

function printResult(o: Common, value: unknown, lines: () => string[]): void {
  if (o.json) out(JSON.stringify(value, null, 2));
  else for (const l of lines()) out(l);
}

function skippedLine(skipped: number, reasons: string[] = []): string[] {
  if (skipped === 0) return [];
  return [
    `skipped ${fmt(skipped)} invalid record(s):`,
    ...reasons.slice(0, 5).map((r) => `  ${r}`),
  ];
}

/** Reads --config (YAML/JSON), resolves listed path fields against its folder, overlays flags. */
async function loadConfig<S extends z.ZodType>(
  schema: S,
  configPath: string | undefined,
  flags: Record<string, unknown>,
  resolvePaths: (v: Record<string, unknown>, base: string) => void = () => {},
): Promise<z.infer<S>> {
  if (!configPath) return parseConfig(schema, mergeConfig({}, flags));
  const src = await readConfigFile(configPath);
  const value = src.value as Record<string, unknown>;
  resolvePaths(value, dirname(resolve(configPath)));
  const fromFlags = new Set(Object.keys(flags).filter((k) => flags[k] !== undefined));
  return parseConfig(schema, mergeConfig(value, flags), {
    file: configPath,
    lineOf: (p) => (fromFlags.has(p[0] ?? '') ? undefined : src.lineOf?.(p)),
  });
}

const rel = (base: string, p: unknown) =>
  typeof p === 'string' && !isAbsolute(p) ? resolve(base, p) : p;

function withCommon(cmd: Command, opts: { kind?: boolean } = {}): Command {
  if (opts.kind !== false)
    cmd.addOption(
      new Option('--kind <kind>', 'record kind (default: detected from the first record)').choices(
        RECORD_KINDS,
      ),
    );
  return cmd
    .option('--skip-invalid', 'count and report invalid records instead of stopping at the first')
    .option('--json', 'print the summary as JSON')
    .option('-q, --quiet', 'no progress output');
}

function registerConvert(data: Command): void {
  withCommon(
    data
      .command('convert <input> <output>')
      .description('Convert records between kinds and formats (.jsonl, .json array, .parquet)')
      .addOption(
        new Option('--to <kind>', 'target kind (default: same kind)').choices(RECORD_KINDS),
      )
      .option('--system <text>', 'system message to put first when building chats')
      .addOption(
        new Option(
          '--on-system <mode>',
          'what to do with a system message when leaving chat',
        ).choices(['error', 'drop', 'prepend']),
      )
      .option(
        '--split-input <sep>',
        'chat -> instruction: split the user turn into instruction and input at this separator',
      )
      .option(
        '--completion-prefix <text>',
        'task -> prompt/completion: text put before the target',
      ),
  ).action(
    async (input: string, output: string, o: Common & Record<string, string | undefined>) => {
      const r = await convertFile({
        input,
        output,
        kind: o.kind,
        to: o.to,
        skipInvalid: o.skipInvalid as unknown as boolean,
        options: {
          system: o.system,
          onSystem: o.onSystem as 'error' | 'drop' | 'prepend' | undefined,
          splitInput: o.splitInput,
          completionPrefix: o.completionPrefix,
        },
        progress: bar(o, 'convert'),
      });
      printResult(o, r, () => [
        `converted ${fmt(r.read)} ${r.from} record(s) from ${r.input} into ${fmt(r.written)} ${r.to} record(s) in ${r.output}`,
        ...skippedLine(r.skipped, r.reasons),
      ]);
    },
  );
}

function registerMix(data: Command): void {
  withCommon(
    data
      .command('mix')
      .description(
        'Mix sources by rate (FLAN/T5 examples-proportional with caps, temperature, explicit)',
      )
      .requiredOption('-o, --out <path>', 'output file (.jsonl, .json, .parquet)')
      .option(
        '--config <file>',
        'YAML mixture config (keys as in the example below; flags override)',
      )
      .option('--source <spec>', 'source file, as path or name=path (repeatable)', collect)
      .option('--by-task', 'mix task examples by their task field instead of by file')
      .addOption(
        new Option('--strategy <s>', 'rate strategy').choices([
          'proportional',
          'temperature',
          'explicit',
        ]),
      )
      .option('--cap <n>', 'per-source cap on n in the rate: rate = min(n, cap)', int)
      .option('--temperature <t>', 'temperature T: rate = min(n, cap)^(1/T)', num)
      .option('--rate <name=r>', 'explicit rate of a source (repeatable)', collect)
      .option('--total <n>', 'examples to produce', int)
      .addOption(
        new Option('--on-exhausted <mode>', 'when a source runs out').choices([
          'drop',
          'repeat',
          'stop',
        ]),
      )
      .option('--seed <n>', 'random seed', int)
      .addHelpText(
        'after',
        `
Config file example (mix.yaml):
  strategy: proportional   # or temperature (with temperature: 2), explicit (with rates)
  cap: 3000                # rate = min(n, cap)
  total: 100000
  onExhausted: repeat      # drop (T5: without replacement) | repeat (epochs) | stop
  seed: 1
  sources:
    - { path: add.jsonl }             # name defaults to the file name
    - { name: reverse, path: rev.jsonl, size: 5000 }`,
      ),
  ).action(async (o: Common & Record<string, unknown>) => {
    const rates: Record<string, number> | undefined = (o.rate as string[] | undefined)?.reduce(
      (acc, spec) => {
        const [name, r] = spec.split('=');
        const v = Number(r);
        if (!name || r === undefined || !Number.isFinite(v) || v < 0)
          throw new ConfigError(`--rate '${spec}' is not name=rate`, { field: 'rates' });
        acc[name] = v;
        return acc;
      },
      {} as Record<string, number>,
    );
    const sources = (o.source as string[] | undefined)?.map((spec) => {
      const at = spec.indexOf('=');
      return at > 0 ? { name: spec.slice(0, at), path: spec.slice(at + 1) } : { path: spec };
    });
    if (!o.config && !sources)
      throw new ConfigError(
        'no sources',
        { field: 'sources' },
        { hint: 'pass --source <file> (repeatable) or --config mix.yaml' },
      );
    const config = await loadConfig(
      MixFilesConfig,
      o.config as string | undefined,
      {
        sources,
        byTask: o.byTask,
        kind: o.kind,
        strategy: o.strategy,
        cap: o.cap,
        temperature: o.temperature,
        rates,
        total: o.total,
        onExhausted: o.onExhausted,
        seed: o.seed,
      },
      (v, base) => {
        if (Array.isArray(v.sources))
          for (const s of v.sources) if (s && typeof s === 'object') s.path = rel(base, s.path);
      },
    );
    const r = await mixFiles({
      config,
      output: o.out as string,
      skipInvalid: o.skipInvalid as boolean | undefined,
      progress: { count: bar(o, config.byTask ? 'split by task' : 'count'), mix: bar(o, 'mix') },
    });
    printResult(o, r, () => {
      const w = Math.max(6, ...r.sources.map((s) => s.name.length));
      return [
        `mixed ${fmt(r.written)} ${r.kind} record(s) into ${r.output} (${r.strategy}, seed ${r.seed}; ended: ${r.ended})`,
        `${'source'.padEnd(w)}  ${'size'.padStart(10)}  ${'target p'.padStart(8)}  ${'emitted'.padStart(10)}  ${'share'.padStart(6)}  epochs`,
        ...r.sources.map(
          (s) =>
            `${s.name.padEnd(w)}  ${fmt(s.size ?? 0).padStart(10)}  ${s.probability.toFixed(4).padStart(8)}  ${fmt(s.emitted).padStart(10)}  ${(r.emitted ? s.emitted / r.emitted : 0).toFixed(4).padStart(6)}  ${s.epochs}${s.exhausted ? ' (exhausted)' : ''}`,
        ),
        ...skippedLine(r.skipped),
      ];
    });
  });
}

function registerSplit(data: Command): void {
  withCommon(
    data
      .command('split <input>')
      .description(
        'Split task examples OPT-IML style: fully held-out categories, partially supervised tasks, held-out instances',
      )
      .requiredOption(
        '--out-dir <dir>',
        'folder for train / fully_held_out / partially_supervised / fully_supervised files',
      )
      .option('--config <file>', 'YAML split config (flags override)')
      .option(
        '--table <file>',
        "task -> category table (.yaml, .json, .csv, .tsv, .jsonl); default: the examples' category fields",
      )
      .option(
        '--held-out-categories <list>',
        'comma-separated categories to hold out entirely',
        list,
      )
      .option('--num-held-out-categories <n>', 'or pick this many categories at random', int)
      .option(
        '--held-out-tasks <list>',
        'comma-separated tasks to hold out from categories that stay in training',
        list,
      )
      .option(
        '--partial-fraction <f>',
        'or hold out this fraction of the tasks of each remaining category',
        num,
      )
      .option(
        '--supervised-fraction <f>',
        "fraction of each training task's instances held out",
        num,
      )
      .option('--seed <n>', 'random seed', int)
      .addOption(
        new Option('--format <fmt>', "output format (default: the input's)").choices([
          'jsonl',
          'json',
          'parquet',
        ]),
      ),
    { kind: false },
  ).action(async (input: string, o: Common & Record<string, unknown>) => {
    const config = await loadConfig(
      SplitFilesConfig,
      o.config as string | undefined,
      {
        table: o.table,
        heldOutCategories: o.heldOutCategories,
        numHeldOutCategories: o.numHeldOutCategories,
        heldOutTasks: o.heldOutTasks,
        partialTaskFraction: o.partialFraction,
        supervisedFraction: o.supervisedFraction,
        seed: o.seed,
      },
      (v, base) => {
        v.table = rel(base, v.table);
      },
    );
    const { table: tablePath, ...splitConfig } = config;
    const table = tablePath ? await readTaskTable(tablePath) : undefined;
    const r = await splitFile({
      input,
      outDir: o.outDir as string,
      config: splitConfig,
      table,
      format: o.format as 'jsonl' | undefined,
      skipInvalid: o.skipInvalid as boolean | undefined,
      progress: {
        table: bar(o, 'read table'),
        split: bar(o, 'split'),
        check: bar(o, 'leak check'),
      },
    });
    printResult(o, { ...r, plan: undefined, planFile: r.planFile }, () => [
      `split ${input} into ${r.outDir} (seed ${r.plan.seed}); plan in ${r.planFile}`,
      `  train                 ${fmt(r.counts.train).padStart(10)}  (${r.plan.trainTasks.length} tasks)`,
      `  fully_held_out        ${fmt(r.counts.fully_held_out).padStart(10)}  (categories: ${r.plan.heldOutCategories.join(', ') || 'none'})`,
      `  partially_supervised  ${fmt(r.counts.partially_supervised).padStart(10)}  (tasks: ${r.plan.partiallySupervisedTasks.join(', ') || 'none'})`,
      `  fully_supervised      ${fmt(r.counts.fully_supervised).padStart(10)}  (${r.plan.supervisedFraction} of each training task)`,
      `leak check: ok, ${fmt(r.leaks.checkedTrain)} training examples checked`,
      ...skippedLine(r.skipped),
    ]);
  });
}

function registerDedup(data: Command): void {
  withCommon(
    data
      .command('dedup <input> <output>')
      .description(
        'Remove exact (normalised) and near (MinHash + LSH) duplicates, keeping the first',
      )
      .option('--config <file>', 'YAML dedup config (flags override)')
      .addOption(new Option('--mode <m>', 'which duplicates').choices(['exact', 'near', 'both']))
      .option('--fields <list>', 'record fields compared (default: all text fields)', list)
      .addOption(new Option('--shingle-unit <u>', 'shingle unit').choices(['char', 'word']))
      .option('--shingle-size <n>', 'shingle length (default 5)', int)
      .option('--num-perm <n>', 'MinHash permutations (default 120)', int)
      .option('--bands <n>', 'LSH bands; rows = num-perm / bands (default 20)', int)
      .option('--threshold <j>', 'Jaccard similarity that counts as a duplicate (default 0.7)', num)
      .addOption(new Option('--verify <v>', 'candidate check').choices(['exact', 'estimate']))
      .option('--seed <n>', 'hash seed', int)
      .option('--report <file>', 'JSONL report: one line per removed record'),
  ).action(async (input: string, output: string, o: Common & Record<string, unknown>) => {
    const config = await loadConfig(DedupConfig, o.config as string | undefined, {
      mode: o.mode,
      fields: o.fields,
      shingleUnit: o.shingleUnit,
      shingleSize: o.shingleSize,
      numPerm: o.numPerm,
      bands: o.bands,
      threshold: o.threshold,
      verify: o.verify,
      seed: o.seed,
    });
    const r = await dedupFile({
      input,
      output,
      kind: o.kind as string | undefined,
      skipInvalid: o.skipInvalid as boolean | undefined,
      config,
      reportPath: o.report as string | undefined,
      progress: bar(o, 'dedup'),
    });
    printResult(o, r, () => [
      `kept ${fmt(r.kept)} of ${fmt(r.total)} ${r.kind} record(s) in ${r.output}: removed ${fmt(r.removedExact)} exact and ${fmt(r.removedNear)} near duplicate(s)` +
        (config.mode !== 'exact'
          ? ` (Jaccard >= ${config.threshold}, ${config.shingleUnit} ${config.shingleSize}-grams, ${config.bands}x${config.numPerm / config.bands} LSH)`
          : ''),
      ...(r.report ? [`report: ${r.report}`] : []),
      ...skippedLine(r.skipped),
    ]);
  });
}

function registerDecontaminate(data: Command): void {
  withCommon(
    data
      .command('decontaminate <input> <output>')
      .description('Remove training records sharing a word n-gram (default 13) with any eval set')
      .option(
        '--eval <spec>',
        'eval file, as path or name=path (repeatable, at least one)',
        collect,
      )
      .option('--config <file>', 'YAML config with n, minN, fields, evalFields (flags override)')
      .option('--n <n>', 'n-gram length in words (default 13)', int)
      .option(
        '--min-n <n>',
        'match eval texts shorter than n words whole if they have at least this many',
        int,
      )
      .option('--fields <list>', 'training fields scanned (default: all text fields)', list)
      .option('--eval-fields <list>', 'eval fields indexed (default: all text fields)', list)
      .option(
        '--report <file>',
        'JSONL report: one line per removed record with eval set and n-gram',
      ),
  ).action(async (input: string, output: string, o: Common & Record<string, unknown>) => {
    const evals = ((o.eval as string[] | undefined) ?? []).map((spec) => {
      const at = spec.indexOf('=');
      return at > 0
        ? { name: spec.slice(0, at), path: spec.slice(at + 1) }
        : { name: spec, path: spec };
    });
    if (evals.length === 0)
      throw new ConfigError(
        'no eval sets',
        { field: 'eval' },
        { hint: 'pass --eval <file> at least once' },
      );
    const config = await loadConfig(DecontaminateConfig, o.config as string | undefined, {
      n: o.n,
      minN: o.minN,
      fields: o.fields,
      evalFields: o.evalFields,
    });
    const r = await decontaminateFile({
      input,
      output,
      kind: o.kind as string | undefined,
      skipInvalid: o.skipInvalid as boolean | undefined,
      evalSets: evals,
      config,
      reportPath: o.report as string | undefined,
      progress: bar(o, 'decontaminate'),
    });
    printResult(o, r, () => [
      `kept ${fmt(r.kept)} of ${fmt(r.total)} ${r.kind} record(s) in ${r.output}; removed ${fmt(r.removed)} sharing a ${config.n}-gram with an eval set`,
      ...r.evalSets.map(
        (e) =>
          `  ${e.name}: ${fmt(e.records)} eval record(s)${e.tooShort ? ` (${fmt(e.tooShort)} shorter than ${config.minN ?? config.n} words, not indexed)` : ''}, removed ${fmt(r.removedBySet[e.name] ?? 0)}`,
      ),
      ...(r.report ? [`report: ${r.report}`] : []),
      ...skippedLine(r.skipped),
    ]);
  });
}

const sumLine = (name: string, s: Summary) =>
  `  ${name.padEnd(22)} ${[s.min, s.p50, s.p90, s.p99, s.max].map((x) => fmt(x).padStart(7)).join('')} ${s.mean.toFixed(1).padStart(9)}`;

function registerStats(data: Command): void {
  withCommon(
    data
      .command('stats <inputs...>')
      .description(
        'Counts, length distributions, task/category counts and exact duplicates of record files',
      )
      .option('--top <n>', 'tasks / categories listed (default 10)', int),
  ).action(async (inputs: string[], o: Common & { top?: number }) => {
    const all = [];
    for (const input of inputs) {
      const s = await fileStats({
        input,
        kind: o.kind,
        skipInvalid: o.skipInvalid,
        progress: bar(o, 'stats'),
      });
      all.push(s);
      if (o.json) continue;
      out(
        `${s.file}: ${fmt(s.records)} ${s.kind} record(s), ${fmt(s.exactDuplicates)} exact duplicate(s)`,
      );
      out(
        `  ${'length (chars)'.padEnd(22)} ${['min', 'p50', 'p90', 'p99', 'max'].map((x) => x.padStart(7)).join('')} ${'mean'.padStart(9)}`,
      );
      for (const [name, f] of Object.entries(s.fields))
        out(sumLine(`${name}${f.empty ? ` (${f.empty} empty)` : ''}`, f.chars));
      out(`  ${'length (words)'.padEnd(22)}`);
      for (const [name, f] of Object.entries(s.fields)) out(sumLine(name, f.words));
      if (s.turns) out(sumLine('messages per chat', s.turns));
      if (s.completionsPerPrompt) out(sumLine('completions per prompt', s.completionsPerPrompt));
      const top = (label: string, m?: Record<string, number>) => {
        if (!m) return;
        const e = Object.entries(m);
        out(
          `  ${label} (${e.length}): ${e
            .slice(0, o.top ?? 10)
            .map(([k, v]) => `${k} ${fmt(v)}`)
            .join(', ')}${e.length > (o.top ?? 10) ? ', ...' : ''}`,
        );
      };
      top('tasks', s.tasks);
      top('categories', s.categories);
      top('templates', s.templates);
      top('roles', s.roles);
      for (const l of skippedLine(s.skipped, s.reasons)) out(l);
    }
    if (o.json) out(JSON.stringify(all.length === 1 ? all[0] : all, null, 2));
  });
}

function show(v: unknown, max: number): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max)}... [${fmt(s.length - max)} more chars]` : s;
}

function registerInspect(data: Command): void {
  withCommon(
    data
      .command('inspect <input>')
      .description('Show a few records, validated, with where they are in the file')
      .option('-n, --count <n>', 'records to show (default 3)', int)
      .option('--offset <k>', 'skip the first k records', int)
      .option('--sample', 'a seeded uniform sample of the whole file instead of the first records')
      .option('--seed <n>', 'seed for --sample', int)
      .option('--max-chars <n>', 'truncate each field to this many characters (default 400)', int),
  ).action(async (input: string, o: Common & Record<string, unknown>) => {
    const r = await inspectFile({
      input,
      kind: o.kind,
      skipInvalid: o.skipInvalid,
      count: o.count as number | undefined,
      offset: o.offset as number | undefined,
      sample: o.sample as boolean | undefined,
      seed: o.seed as number | undefined,
    });
    if (o.json) {
      for (const x of r.records) out(JSON.stringify(x.record));
      return;
    }
    const max = (o.maxChars as number | undefined) ?? 400;
    for (const x of r.records) {
      out(
        `--- record ${x.row} (${x.line !== undefined ? `${x.file}:${x.line}` : `${x.file} row ${x.row}`}) [${x.kind}]`,
      );
      for (const [k, v] of Object.entries(x.record as Record<string, unknown>)) {
        if (k === 'messages')
          for (const m of v as { role: string; content: string }[])
            out(`  [${m.role}] ${show(m.content, max)}`);
        else out(`  ${k}: ${show(v, max)}`);
      }
    }
    out(
      `${r.records.length} of ${o.sample ? fmt(r.seen) : `${fmt(r.seen)}+`} record(s) shown${r.skipped ? `, ${fmt(r.skipped)} invalid skipped` : ''}`,
    );
  });
}

/** Adds the data subcommands (all but `render`, which the templates module registers). */
export function registerDataCommands(data: Command): void {
  registerConvert(data);
  registerMix(data);
  registerSplit(data);
  registerDedup(data);
  registerDecontaminate(data);
  registerStats(data);
  registerInspect(data);
}
