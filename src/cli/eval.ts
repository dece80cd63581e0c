// `instructkit eval --model <dir | http(s) URL> --tasks <task.yaml ...>`: loads the tasks, picks
// the local backend (an HF model directory) or the endpoint backend (an OpenAI-compatible base
// URL), evaluates every task, prints a Markdown table (one row per task and metric) and
// optionally writes it and the JSON results (with per-example predictions) to files.
// `instructkit eval judge --pairs p.jsonl --judge-url URL`: the order-swapped pairwise judge.
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { z } from 'zod';
import type { LmBackend } from '../eval/backend.ts';
import { EndpointBackend } from '../eval/backend.ts';
import { type JudgeItem, judgePairwise } from '../eval/judge.ts';
import { LocalBackend } from '../eval/local.ts';
import { taskMetricRows, taskMetricsMarkdown } from '../eval/report.ts';
import { evaluateTask, type TaskResult } from '../eval/run.ts';
import { loadTaskFile } from '../eval/task.ts';
import { CausalLM } from '../models/lm.ts';
import { LlmClient } from '../synth/client.ts';
import { ConfigError, DataError } from '../util/errors.ts';
import { readJsonl } from '../util/jsonl.ts';

interface EvalFlags {
  model: string;
  tasks: string[];
  numFewshot?: number;
  limit?: number;
  batchSize?: number;
  seed: number;
  out?: string;
  markdown?: string;
  modelName?: string;
  apiKeyEnv?: string;
}

const int =
  (flag: string, min: number) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new ConfigError(`expected an integer >= ${min}, got '${v}'`, { field: flag });
    return n;
  };

function endpointClient(url: string, model: string, apiKeyEnv?: string): LlmClient {
  return new LlmClient({
    endpoints: [{ base_url: url, ...(apiKeyEnv ? { api_key_env: apiKeyEnv } : {}) }],
    model,
  });
}

interface JudgeFlags {
  pairs: string;
  judgeUrl: string;
  judgeModel: string;
  apiKeyEnv?: string;
  maxTokens: number;
  out?: string;
}

/** Pairs to judge: JSONL of {id?, instruction, input?, a, b}; bad lines name file, line, field. */
async function readPairs(path: string): Promise<JudgeItem[]> {
  const items: JudgeItem[] = [];
  try {
    for await (const l of readJsonl(path)) {
      const r = JudgeItemSchema.safeParse(l.value);
      if (!r.success) {
        const i = r.error.issues[0]!;
        throw new DataError(i.message, { file: path, line: l.line, field: i.path.join('.') });
      }
      items.push(r.data);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new ConfigError('pairs file not found', { file: path, field: 'pairs' });
    throw e;
  }
  if (items.length === 0) throw new DataError('no pairs to judge', { file: path });
  return items;
}

const JudgeItemSchema = z.strictObject({
  id: z.string().optional(),
  instruction: z.string(),
  input: z.string().optional(),
  a: z.string(),
  b: z.string(),
});

function registerJudge(evalCmd: Command): void {
  evalCmd
    .command('judge')
    .description(
      'LLM-as-judge: compare responses a and b pairwise in both orders with an OpenAI-compatible judge',
    )
    .requiredOption('--pairs <file>', 'JSONL of {id?, instruction, input?, a, b}')
    .requiredOption('--judge-url <url>', 'base URL of the judge, like http://127.0.0.1:8000/v1')
    .option('--judge-model <name>', 'model name sent to the judge', 'default')
    .option('--api-key-env <NAME>', 'environment variable with the judge API key')
    .option('--max-tokens <n>', 'tokens per verdict', int('max_tokens', 1), 256)
    .option('--out <file>', 'write the summary and every verdict as JSON here')
    .action(async (_: unknown, cmd: Command) => {
      // The program's options are not positional, so `eval` may have taken the options both
      // commands define (--out, --api-key-env); read them merged.
      const f = cmd.optsWithGlobals() as JudgeFlags;
      const items = await readPairs(f.pairs);
      const s = await judgePairwise(items, {
        client: endpointClient(f.judgeUrl, f.judgeModel, f.apiKeyEnv),
        maxTokens: f.maxTokens,
      });
      const pct = (x: number) => (100 * x).toFixed(1);
      process.stdout.write(
        `judge ${f.judgeModel}: ${s.n} pairs, a wins ${s.win}, ties ${s.tie}, b wins ${s.loss}; ` +
          `win rate of a ${pct(s.winRate)}%, order agreement ${pct(s.agreement)}%, invalid verdicts ${s.invalid}\n`,
      );
      if (f.out) writeFileSync(f.out, `${JSON.stringify(s, null, 2)}\n`);
    });
}

export function registerEval(program: Command): Command {
  const evalCmd = program
    .command('eval')
    .description('Evaluate a model (HF directory or OpenAI-compatible URL) on task YAML files')
    // Checked in the action, not by commander, so that `eval judge` needs neither.
    .option('--model <dir|url>', 'HF model directory, or base URL like http://127.0.0.1:8000/v1')
    .option('--tasks <files...>', 'task YAML files (lm-evaluation-harness style)')
    .option('--num-fewshot <k>', 'override num_fewshot', int('num_fewshot', 0))
    .option('--limit <n>', 'documents per task', int('limit', 1))
    .option('--batch-size <n>', 'requests per batch', int('batch_size', 1))
    .option('--seed <n>', 'seed of the bootstrap intervals', int('seed', 0), 0)
    .option('--model-name <name>', 'model name sent to an endpoint', 'default')
    .option('--api-key-env <NAME>', 'environment variable with the endpoint API key')
    .option('--out <file>', 'write JSON results here')
    .option('--markdown <file>', 'write the Markdown table here')
    .action(async (f: Partial<EvalFlags>) => {
      if (!f.model) throw new ConfigError('eval needs --model <dir|url>', { field: 'model' });
      if (!f.tasks?.length)
        throw new ConfigError('eval needs --tasks <task.yaml ...>', { field: 'tasks' });
      const model = f.model;
      // Task files are checked before a model is loaded, so bad input fails fast.
      const tasks = f.tasks.map((path) => {
        const t = loadTaskFile(path);
        if (f.numFewshot !== undefined) t.config.num_fewshot = f.numFewshot;
        return t;
      });
      const backend: LmBackend = /^https?:\/\//.test(model)
        ? new EndpointBackend(endpointClient(model, f.modelName ?? 'default', f.apiKeyEnv), {
            batchSize: f.batchSize,
          })
        : new LocalBackend(await CausalLM.load(model), {
            name: model,
            batchSize: f.batchSize,
          });
      const results: TaskResult[] = [];
      for (const t of tasks) results.push(await evaluateTask(t, backend, { limit: f.limit }));
      const rows = taskMetricRows(results, { seed: f.seed ?? 0 });
      const md = taskMetricsMarkdown(rows);
      process.stdout.write(md);
      if (f.markdown) writeFileSync(f.markdown, md);
      if (f.out)
        writeFileSync(
          f.out,
          `${JSON.stringify({ model: backend.name, table: rows, tasks: results }, null, 2)}\n`,
        );
    });
  registerJudge(evalCmd);
  return evalCmd;
}
