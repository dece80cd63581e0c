// `instructkit synth self-instruct | alpaca`: flags (or a YAML config) → an LlmClient and one
// pipeline call. Progress on stderr shows kept / target, rejects by reason and cost; the final
// report lists every reject reason with its count.
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { type ConfigSource, parseConfig, readConfigFile } from '../data/config.ts';
import { AlpacaConfig, runAlpaca } from '../synth/alpaca.ts';
import { LlmClient, LlmClientConfig } from '../synth/client.ts';
import { runSelfInstruct, SelfInstructConfig, type SynthProgress } from '../synth/self-instruct.ts';
import { ConfigError } from '../util/errors.ts';

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

function statusPrinter(label: string, quiet: boolean): (p: SynthProgress) => void {
  let last = 0;
  let lastStage = '';
  const tty = process.stderr.isTTY;
  return (p) => {
    if (quiet) return;
    const now = performance.now();
    if (p.stage === lastStage && now - last < (tty ? 200 : 5000) && p.stage !== 'done') return;
    last = now;
    lastStage = p.stage;
    const rej = Object.entries(p.rejected)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    const cost = p.usage.network.cost_usd;
    const line = `${label} [${p.stage}] kept ${p.kept}/${p.target} | rejected: ${rej || 'none'} | requests ${p.usage.network.requests} (+${p.usage.cached.requests} cached) | $${cost.toFixed(4)}`;
    process.stderr.write(tty ? `\r\x1b[2K${line}${p.stage === 'done' ? '\n' : ''}` : `${line}\n`);
  };
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
  const onProgress = statusPrinter(kind, flags.quiet ?? false);
  const report =
    kind === 'self-instruct'
      ? await runSelfInstruct(common as Parameters<typeof runSelfInstruct>[0], {
          client: llm,
          onProgress,
        })
      : await runAlpaca(common as Parameters<typeof runAlpaca>[0], { client: llm, onProgress });
  const rejected =
    'rejected_instructions' in report ? report.rejected_instructions : report.rejected;
  const lines = [
    `${kind}: ${report.records} records written to ${join(out, 'data.jsonl')}${report.stalled ? ' (stopped: no progress)' : ''}`,
    `rejected candidates by reason:`,
    ...Object.entries(rejected)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `  ${k.padEnd(24)} ${n}`),
    `requests: ${report.usage.network.requests} over the network, ${report.usage.cached.requests} from cache, ${report.usage.retries} retries`,
    `tokens: ${report.usage.network.prompt_tokens} prompt + ${report.usage.network.completion_tokens} completion; cost $${report.usage.network.cost_usd.toFixed(4)}`,
  ];
  if ('rejected_instances' in report) {
    lines.splice(
      2 + Object.keys(rejected).length,
      0,
      `instances: ${report.instances} kept; rejected: ${JSON.stringify(report.rejected_instances)}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
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
