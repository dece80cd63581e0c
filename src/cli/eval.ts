// `instructkit eval --model <dir | http(s) URL> --tasks <task.yaml ...>`: loads the tasks, picks
// the local backend (an HF model directory) or the endpoint backend (an OpenAI-compatible base
// URL), evaluates, prints a Markdown table and optionally writes JSON results.
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { LmBackend } from '../eval/backend.ts';
import { EndpointBackend } from '../eval/backend.ts';
import { evaluateHeldout } from '../eval/heldout.ts';
import { LocalBackend } from '../eval/local.ts';
import { heldoutMarkdown } from '../eval/report.ts';
import { loadTaskFile } from '../eval/task.ts';
import { CausalLM } from '../models/lm.ts';
import { LlmClient } from '../synth/client.ts';

interface EvalFlags {
  model: string;
  tasks: string[];
  numFewshot?: number;
  limit?: number;
  out?: string;
  modelName?: string;
  apiKeyEnv?: string;
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('Evaluate a model (HF directory or OpenAI-compatible URL) on task YAML files')
    .requiredOption(
      '--model <dir|url>',
      'HF model directory, or base URL like http://127.0.0.1:8000/v1',
    )
    .requiredOption('--tasks <files...>', 'task YAML files (lm-evaluation-harness style)')
    .option('--num-fewshot <k>', 'override num_fewshot', (v) => Number(v))
    .option('--limit <n>', 'documents per task', (v) => Number(v))
    .option('--model-name <name>', 'model name sent to an endpoint', 'default')
    .option('--api-key-env <NAME>', 'environment variable with the endpoint API key')
    .option('--out <file>', 'write JSON results here')
    .action(async (f: EvalFlags) => {
      const backend: LmBackend = /^https?:\/\//.test(f.model)
        ? new EndpointBackend(
            new LlmClient({
              endpoints: [
                { base_url: f.model, ...(f.apiKeyEnv ? { api_key_env: f.apiKeyEnv } : {}) },
              ],
              model: f.modelName ?? 'default',
            }),
          )
        : new LocalBackend(await CausalLM.load(f.model), { name: f.model });
      const tasks = f.tasks.map((path) => {
        const t = loadTaskFile(path);
        if (f.numFewshot !== undefined) t.config.num_fewshot = f.numFewshot;
        return { task: t, group: 'all', category: t.config.category ?? t.config.task };
      });
      const r = await evaluateHeldout(tasks, backend, { limit: f.limit });
      process.stdout.write(heldoutMarkdown(r));
      if (f.out) writeFileSync(f.out, `${JSON.stringify(r, null, 2)}\n`);
    });
}
