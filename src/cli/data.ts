// `instructkit data convert | mix | split | dedup | decontaminate | stats | inspect`: flag parsing
// only; each command calls one job from src/data (jobs.ts, mix-files.ts, split-files.ts) and
// prints its summary (summaries.ts) or, with --json, the result. Progress goes to stderr.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../data/config.ts';
import { DecontaminateConfig } from '../data/decontaminate.ts';
import { DedupConfig } from '../data/dedup.ts';
import { RECORD_KINDS } from '../data/io.ts';
import { convertFile, decontaminateFile, dedupFile, fileStats, inspectFile } from '../data/jobs.ts';
import { MixFilesConfig, mixFiles } from '../data/mix-files.ts';
import { SplitFilesConfig, splitFile } from '../data/split-files.ts';
import {
  convertLines,
  decontaminateLines,
  dedupLines,
  mixLines,
  recordLines,
  skippedLines,
  splitLines,
  statsLines,
} from '../data/summaries.ts';
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
const choice = (flags: string, help: string, choices: string[]) =>
  new Option(flags, help).choices(choices);

/** Flags every data command has. */
interface Common {
  json?: boolean;
  quiet?: boolean;
  skipInvalid?: boolean;
  kind?: string;
  [flag: string]: unknown;
}

const bar = (o: Common, label: string): Progress =>
  progress({ label, unit: 'records', enabled: !o.quiet });
const out = (s: string) => process.stdout.write(`${s}\n`);
const str = (v: unknown) => v as string | undefined;

function printResult(o: Common, value: unknown, lines: () => string[]): void {
  if (o.json) out(JSON.stringify(value, null, 2));
  else for (const l of lines()) out(l);
}

/** `name=path` or `path` (name = the path). */
function namedPath(spec: string): { name?: string; path: string } {
  const at = spec.indexOf('=');
  return at > 0 ? { name: spec.slice(0, at), path: spec.slice(at + 1) } : { path: spec };
}

function withCommon(cmd: Command, opts: { kind?: boolean } = {}): Command {
  if (opts.kind !== false)
    cmd.addOption(
      choice(
        '--kind <kind>',
        'record kind (default: detected from the first record)',
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
      .addOption(choice('--to <kind>', 'target kind (default: same kind)', RECORD_KINDS))
      .option('--system <text>', 'system message to put first when building chats')
      .addOption(
        choice('--on-system <mode>', 'system message when leaving chat', [
          'error',
          'drop',
          'prepend',
        ]),
      )
      .option('--split-input <sep>', 'chat -> instruction: split the user turn at this separator')
      .option('--completion-prefix <text>', 'task -> prompt/completion: put before the target'),
  ).action(async (input: string, output: string, o: Common) => {
    const r = await convertFile({
      input,
      output,
      kind: o.kind,
      to: str(o.to),
      skipInvalid: o.skipInvalid,
      options: {
        system: str(o.system),
        onSystem: o.onSystem as 'error' | 'drop' | 'prepend' | undefined,
        splitInput: str(o.splitInput),
        completionPrefix: str(o.completionPrefix),
      },
      progress: bar(o, 'convert'),
    });
    printResult(o, r, () => convertLines(r));
  });
}

const MIX_EXAMPLE = `
Config file example (mix.yaml; paths are relative to it):
  strategy: proportional   # or temperature (with temperature: 2), explicit (with rates)
  cap: 3000                # rate = min(n, cap)
  total: 100000
  onExhausted: repeat      # drop (T5: without replacement) | repeat (epochs) | stop
  seed: 1
  sources:
    - { path: add.jsonl }  # name defaults to the file name
    - { name: reverse, path: rev.jsonl, size: 5000 }`;

function registerMix(data: Command): void {
  withCommon(
    data
      .command('mix')
      .description('Mix sources by rate: examples-proportional with caps, temperature, explicit')
      .requiredOption('-o, --out <path>', 'output file (.jsonl, .json, .parquet)')
      .option('--config <file>', 'YAML mixture config (see below; flags override)')
      .option('--source <spec>', 'source file, as path or name=path (repeatable)', collect)
      .option('--by-task', 'mix task examples by their task field instead of by file')
      .addOption(choice('--strategy <s>', 'rates', ['proportional', 'temperature', 'explicit']))
      .option('--cap <n>', 'per-source cap on n in the rate: rate = min(n, cap)', int)
      .option('--temperature <t>', 'temperature T: rate = min(n, cap)^(1/T)', num)
      .option('--rate <name=r>', 'explicit rate of a source (repeatable)', collect)
      .option('--total <n>', 'examples to produce', int)
      .addOption(
        choice('--on-exhausted <mode>', 'when a source runs out', ['drop', 'repeat', 'stop']),
      )
      .option('--seed <n>', 'random seed', int)
      .addHelpText('after', MIX_EXAMPLE),
  ).action(async (o: Common) => {
    let rates: Record<string, number> | undefined;
    for (const spec of (o.rate as string[] | undefined) ?? []) {
      const { name, path: r } = namedPath(spec);
      const v = Number(r);
      if (!name || !Number.isFinite(v) || v < 0)
        throw new ConfigError(`--rate '${spec}' is not name=rate`, { field: 'rates' });
      rates = { ...rates, [name]: v };
    }
    const sources = (o.source as string[] | undefined)?.map(namedPath);
    if (!o.config && !sources)
      throw new ConfigError(
        'no sources',
        { field: 'sources' },
        {
          hint: 'pass --source <file> (repeatable) or --config mix.yaml',
        },
      );
    const config = await loadConfig(
      MixFilesConfig,
      str(o.config),
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
      ['sources.*.path'],
    );
    const r = await mixFiles({
      config,
      output: o.out as string,
      skipInvalid: o.skipInvalid,
      progress: { count: bar(o, config.byTask ? 'split by task' : 'count'), mix: bar(o, 'mix') },
    });
    printResult(o, r, () => mixLines(r));
  });
}

function registerSplit(data: Command): void {
  withCommon(
    data
      .command('split <input>')
      .description(
        'Split task examples OPT-IML style: held-out categories, held-out tasks, held-out instances',
      )
      .requiredOption('--out-dir <dir>', 'folder for the four split files and split_plan.json')
      .option('--config <file>', 'YAML split config (flags override)')
      .option('--table <file>', 'task -> category table (.yaml .json .csv .tsv .jsonl)')
      .option(
        '--held-out-categories <list>',
        'categories held out entirely (comma-separated)',
        list,
      )
      .option('--num-held-out-categories <n>', 'or hold out this many random categories', int)
      .option('--held-out-tasks <list>', 'tasks held out from categories still trained on', list)
      .option('--partial-fraction <f>', "or hold out this fraction of each category's tasks", num)
      .option(
        '--supervised-fraction <f>',
        "fraction of each training task's instances held out",
        num,
      )
      .option('--seed <n>', 'random seed', int)
      .addOption(
        choice('--format <fmt>', "output format (default: the input's)", [
          'jsonl',
          'json',
          'parquet',
        ]),
      ),
    { kind: false },
  ).action(async (input: string, o: Common) => {
    const config = await loadConfig(
      SplitFilesConfig,
      str(o.config),
      {
        table: o.table,
        heldOutCategories: o.heldOutCategories,
        numHeldOutCategories: o.numHeldOutCategories,
        heldOutTasks: o.heldOutTasks,
        partialTaskFraction: o.partialFraction,
        supervisedFraction: o.supervisedFraction,
        seed: o.seed,
      },
      ['table'],
    );
    const { table: tablePath, ...splitConfig } = config;
    const r = await splitFile({
      input,
      outDir: o.outDir as string,
      config: splitConfig,
      table: tablePath ? await readTaskTable(tablePath) : undefined,
      format: o.format as 'jsonl' | 'json' | 'parquet' | undefined,
      skipInvalid: o.skipInvalid,
      progress: {
        table: bar(o, 'read table'),
        split: bar(o, 'split'),
        check: bar(o, 'leak check'),
      },
    });
    printResult(o, r, () => splitLines(r));
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
      .addOption(choice('--mode <m>', 'which duplicates', ['exact', 'near', 'both']))
      .option('--fields <list>', 'record fields compared (default: all text fields)', list)
      .addOption(choice('--shingle-unit <u>', 'shingle unit', ['char', 'word']))
      .option('--shingle-size <n>', 'shingle length (default 5)', int)
      .option('--num-perm <n>', 'MinHash permutations (default 120)', int)
      .option('--bands <n>', 'LSH bands; rows = num-perm / bands (default 20)', int)
      .option('--threshold <j>', 'Jaccard similarity that counts as a duplicate (default 0.7)', num)
      .addOption(choice('--verify <v>', 'candidate check', ['exact', 'estimate']))
      .option('--seed <n>', 'hash seed', int)
      .option('--report <file>', 'JSONL report: one line per removed record'),
  ).action(async (input: string, output: string, o: Common) => {
    const config = await loadConfig(DedupConfig, str(o.config), {
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
      kind: o.kind,
      skipInvalid: o.skipInvalid,
      config,
      reportPath: str(o.report),
      progress: bar(o, 'dedup'),
    });
    printResult(o, r, () => dedupLines(r, config));
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
      .option('--min-n <n>', 'match shorter eval texts whole if they have this many words', int)
      .option('--fields <list>', 'training fields scanned (default: all text fields)', list)
      .option('--eval-fields <list>', 'eval fields indexed (default: all text fields)', list)
      .option(
        '--report <file>',
        'JSONL report: one line per removed record, with eval set and n-gram',
      ),
  ).action(async (input: string, output: string, o: Common) => {
    const evals = ((o.eval as string[] | undefined) ?? []).map(namedPath);
    if (evals.length === 0)
      throw new ConfigError('no eval sets', { field: 'eval' }, { hint: 'pass --eval <file>' });
    const config = await loadConfig(DecontaminateConfig, str(o.config), {
      n: o.n,
      minN: o.minN,
      fields: o.fields,
      evalFields: o.evalFields,
    });
    const r = await decontaminateFile({
      input,
      output,
      kind: o.kind,
      skipInvalid: o.skipInvalid,
      evalSets: evals.map((e) => ({ name: e.name ?? e.path, path: e.path })),
      config,
      reportPath: str(o.report),
      progress: bar(o, 'decontaminate'),
    });
    printResult(o, r, () => decontaminateLines(r, config));
  });
}

function registerStats(data: Command): void {
  withCommon(
    data
      .command('stats <inputs...>')
      .description('Counts, lengths, task/category counts and exact duplicates of record files')
      .option('--top <n>', 'tasks / categories listed (default 10)', int),
  ).action(async (inputs: string[], o: Common) => {
    const all = [];
    for (const input of inputs) {
      const s = await fileStats({
        input,
        kind: o.kind,
        skipInvalid: o.skipInvalid,
        progress: bar(o, 'stats'),
      });
      all.push(s);
      if (!o.json) for (const l of statsLines(s, o.top as number | undefined)) out(l);
    }
    if (o.json) out(JSON.stringify(all.length === 1 ? all[0] : all, null, 2));
  });
}

function registerInspect(data: Command): void {
  withCommon(
    data
      .command('inspect <input>')
      .description('Show a few validated records and where they are in the file')
      .option('-n, --count <n>', 'records to show (default 3)', int)
      .option('--offset <k>', 'skip the first k records', int)
      .option(
        '--sample',
        'a seeded uniform sample of the whole file (one pass, reservoir) instead of the first records',
      )
      .option('--seed <n>', 'seed for --sample', int)
      .option('--max-chars <n>', 'truncate each field to this many characters (default 400)', int),
  ).action(async (input: string, o: Common) => {
    const r = await inspectFile({
      input,
      kind: o.kind,
      skipInvalid: o.skipInvalid,
      count: o.count as number | undefined,
      offset: o.offset as number | undefined,
      sample: o.sample as boolean | undefined,
      seed: o.seed as number | undefined,
      progress: bar(o, o.sample ? 'sample' : 'inspect'),
    });
    if (o.json) {
      for (const x of r.records) out(JSON.stringify(x.record));
      // stdout holds only records here; what was skipped still gets said.
      for (const l of skippedLines(r.skipped, r.reasons)) process.stderr.write(`${l}\n`);
      return;
    }
    for (const x of r.records)
      for (const l of recordLines(x, o.maxChars as number | undefined)) out(l);
    const of = o.sample ? r.seen.toLocaleString('en-US') : `${r.seen.toLocaleString('en-US')}+`;
    out(`${r.records.length} of ${of} record(s) shown`);
    for (const l of skippedLines(r.skipped, r.reasons)) out(l);
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
