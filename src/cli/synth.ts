// `instructkit synth self-instruct | alpaca`: flags (or a YAML config) → an LlmClient and one
// pipeline call. A progress bar per stage on stderr shows kept / target, rejects by reason and
// cost; the final report on stdout lists every reject reason with its count.
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { type ConfigSource, parseConfig, readConfigFile } from '../data/config.ts';
import { AlpacaConfig, type AlpacaReport, runAlpaca } from '../synth/alpaca.ts';
import { LlmClient, LlmClientConfig } from '../synth/client.ts';
import {
  runSelfInstruct,
  SelfInstructConfig,
  type SelfInstructReport,
  type SynthProgress,
} from '../synth/self-instruct.ts';
import { ConfigError } from '../util/errors.ts';
import { type Progress, progress } from '../util/progress.ts';

const int = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('expected an integer');
  return n;
};
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

interface SynthFlags {
  config?: string;
  seedTasks?: string;
  endpoint?: string[];
  model?: string;
  target?: number;
  apiKeyEnv?: string;
  out?: string;
  concurrency?: number;
  seed?: number;
  api?: string;
  cacheDir?: string;
  noCache?: boolean;
  cache?: boolean;
  quiet?: boolean;
}

/** `--endpoint URL` or `--endpoint URL@weight`, repeatable. */
function endpoints(
  flags: SynthFlags,
): { base_url: string; api_key_env?: string; weight: number }[] {
  const list = flags.endpoint ?? [];
  if (list.length === 0)
    throw new ConfigError(
      'no endpoint given',
      { field: 'endpoint' },
      { hint: 'pass --endpoint http://host:port/v1' },
    );
  return list.map((e) => {
    const m = /^(.*)@(\d+(?:\.\d+)?)$/.exec(e);
    const base_url = m ? m[1]! : e;
    return {
      base_url,
      weight: m ? Number(m[2]) : 1,
      ...(flags.apiKeyEnv ? { api_key_env: flags.apiKeyEnv } : {}),
    };
  });
}

const byCount = (m: Record<string, number>): [string, number][] =>
  Object.entries(m).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));

/**
 * A progress bar per stage (util/progress: a bar on a terminal, plain lines otherwise) showing
 * kept / target, the rejects by reason so far, requests and cost.
 */
function stageProgress(kind: string, quiet: boolean) {
  let bar: Progress | undefined;
  let stage = '';
  const units: Record<string, string> = {
    instructions: 'kept',
    classification: 'classified',
    instances: 'with instances',
  };
  return {
    onProgress(p: SynthProgress): void {
      if (p.stage === 'done') {
        bar?.done();
        bar = undefined;
        return;
      }
      if (p.stage !== stage) {
        bar?.done();
        stage = p.stage;
        bar = progress({
          label: `${kind} ${p.stage}`,
          unit: units[p.stage] ?? 'items',
          total: p.target,
          enabled: !quiet,
        });
      }
      const rej = byCount(p.rejected)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
      const u = p.usage;
      bar!.detail(
        `rejected: ${rej || 'none'} | requests ${u.network.requests} (+${u.cached.requests} cached) | $${u.network.cost_usd.toFixed(4)}`,
      );
      // The last round can keep more than the target; the output stops at the target.
      bar!.set(Math.min(p.kept, p.target));
    },
    fail(): void {
      bar?.fail();
    },
  };
}

/** The final report: records written, every reject reason with its count, requests and cost. */
export function formatSynthReport(
  kind: string,
  report: SelfInstructReport | AlpacaReport,
  dataPath: string,
): string {
  const reasons = (m: Record<string, number>) =>
    Object.keys(m).length === 0
      ? ['  (none)']
      : byCount(m).map(([k, n]) => `  ${k.padEnd(24)} ${n}`);
  const lines = [
    `${kind}: ${report.records} records written to ${dataPath}${report.stalled ? ' (stopped: no progress)' : ''}`,
  ];
  if ('rejected_instructions' in report) {
    lines.push(
      `instructions: ${report.instructions} kept (${report.classification_tasks} classification); rejected by reason:`,
      ...reasons(report.rejected_instructions),
      `instances: ${report.instances} kept; rejected by reason:`,
      ...reasons(report.rejected_instances),
    );
  } else {
    lines.push('rejected candidates by reason:', ...reasons(report.rejected));
  }
  const u = report.usage;
  lines.push(
    `requests: ${u.network.requests} over the network, ${u.cached.requests} from cache, ${u.retries} retries`,
    `tokens: ${u.network.prompt_tokens} prompt + ${u.network.completion_tokens} completion; cost $${u.network.cost_usd.toFixed(4)}`,
  );
  return `${lines.join('\n')}\n`;
}

async function run(kind: 'self-instruct' | 'alpaca', flags: SynthFlags): Promise<void> {
  const src: ConfigSource = flags.config ? await readConfigFile(flags.config) : { value: {} };
  const root = (src.value ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(root)) {
    if (k !== 'client' && k !== 'pipeline') {
      throw new ConfigError(`unknown key '${k}' (expected 'client' and 'pipeline')`, {
        file: src.file,
        field: k,
      });
    }
  }
  const section = (name: string): Pick<ConfigSource, 'file' | 'lineOf'> => ({
    file: src.file,
    lineOf: (p) => src.lineOf?.([name, ...p]),
  });
  const pipelineRaw = (root.pipeline as Record<string, unknown> | undefined) ?? {};
  const out =
    flags.out ?? (pipelineRaw.out_dir as string | undefined) ?? join('runs', `synth-${kind}`);
  const clientCfg = parseConfig(
    LlmClientConfig,
    {
      ...(flags.endpoint ? { endpoints: endpoints(flags) } : {}),
      ...((root.client as Record<string, unknown> | undefined) ?? {}),
      ...(flags.model ? { model: flags.model } : {}),
      ...(flags.concurrency ? { concurrency: flags.concurrency } : {}),
      ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
      ...(flags.cache === false ? {} : { cache_dir: flags.cacheDir ?? join(out, 'cache') }),
    },
    section('client'),
  );
  const llm = new LlmClient(clientCfg);
  const common = {
    ...pipelineRaw,
    ...(flags.seedTasks ? { seed_tasks: flags.seedTasks } : {}),
    ...(flags.target ? { target: flags.target } : {}),
    ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
    ...(flags.api ? { api: flags.api } : {}),
    out_dir: out,
  };
  const schema = kind === 'self-instruct' ? SelfInstructConfig : AlpacaConfig;
  parseConfig(schema, common, section('pipeline'));
  const bars = stageProgress(kind, flags.quiet ?? false);
  const onProgress = (p: SynthProgress) => bars.onProgress(p);
  let report: SelfInstructReport | AlpacaReport;
  try {
    report =
      kind === 'self-instruct'
        ? await runSelfInstruct(common as Parameters<typeof runSelfInstruct>[0], {
            client: llm,
            onProgress,
          })
        : await runAlpaca(common as Parameters<typeof runAlpaca>[0], { client: llm, onProgress });
  } catch (e) {
    bars.fail();
    throw e;
  }
  process.stdout.write(formatSynthReport(kind, report, join(out, 'data.jsonl')));
}

export function registerSynthCommands(synth: Command): void {
  for (const kind of ['self-instruct', 'alpaca'] as const) {
    synth
      .command(kind)
      .description(
        kind === 'self-instruct'
          ? 'Self-Instruct: bootstrap instructions from seed tasks, classify them, generate and filter instances'
          : 'Alpaca-style generation: ~20 instruction/input/output triples per request from 3 seed tasks',
      )
      .option(
        '--config <file>',
        'YAML with `client:` (LlmClient fields) and `pipeline:` (pipeline fields)',
      )
      .option('--seed-tasks <file>', 'seed tasks, Self-Instruct JSONL format')
      .option(
        '--endpoint <url[@weight]>',
        'OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (repeatable)',
        collect,
      )
      .option('--model <name>', 'model name sent to the endpoint')
      .option('--target <n>', 'how many instructions to generate', int)
      .option('--api-key-env <NAME>', 'environment variable holding the API key')
      .option('--out <dir>', 'output directory (resumes the run found there)')
      .option('--concurrency <n>', 'requests in flight', int)
      .option('--seed <n>', 'random seed', int)
      .option('--api <style>', 'completions (default) or chat')
      .option('--cache-dir <dir>', 'response cache (default <out>/cache)')
      .option('--no-cache', 'do not cache responses')
      .option('-q, --quiet', 'no progress output')
      .action(async (flags: SynthFlags) => run(kind, flags));
  }
}
