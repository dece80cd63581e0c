// `instructkit serve --model DIR [--adapter DIR] --port P`: the OpenAI-compatible server.
import type { Command } from 'commander';
import { startServer } from '../serve/listen.ts';
import { ConfigError } from '../util/errors.ts';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description(
      'Serve a model over the OpenAI API (/v1/models, /v1/completions, /v1/chat/completions)',
    )
    .requiredOption('--model <dir>', 'HF model directory')
    .option('--adapter <dir>', 'PEFT LoRA adapter to merge at load')
    .option('--port <n>', 'port', (v) => Number(v), 8000)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--model-name <name>', 'the name clients pass as `model`', 'instructkit')
    .option('--api-key-env <NAME>', 'require this environment variable’s value as the bearer token')
    .option('--max-tokens <n>', 'largest max_tokens accepted', (v) => Number(v), 1024)
    .option(
      '--max-body-bytes <n>',
      'largest request body in bytes (413 above)',
      (v) => Number(v),
      1_000_000,
    )
    .option(
      '--max-prompt-tokens <n>',
      'largest total of prompt tokens in one request',
      (v) => Number(v),
      65_536,
    )
    .option('--max-batch <n>', 'sequences decoded together', (v) => Number(v), 32)
    .option('--max-concurrent <n>', 'requests in flight before 429', (v) => Number(v), 64)
    .action(
      async (o: {
        model: string;
        adapter?: string;
        port: number;
        host: string;
        modelName: string;
        apiKeyEnv?: string;
        maxTokens: number;
        maxBodyBytes: number;
        maxPromptTokens: number;
        maxBatch: number;
        maxConcurrent: number;
      }) => {
        for (const [flag, v] of [
          ['max-tokens', o.maxTokens],
          ['max-body-bytes', o.maxBodyBytes],
          ['max-prompt-tokens', o.maxPromptTokens],
          ['max-batch', o.maxBatch],
          ['max-concurrent', o.maxConcurrent],
        ] as const)
          if (!Number.isInteger(v) || v < 1)
            throw new ConfigError(`--${flag} must be a positive integer, got ${v}`, {
              field: flag,
            });
        const { env } = await import('../util/env.ts');
        const apiKey = o.apiKeyEnv ? env.named(o.apiKeyEnv) : undefined;
        // An unset variable must not quietly serve without a key: the user asked for one.
        if (o.apiKeyEnv && !apiKey)
          throw new ConfigError(
            `environment variable ${o.apiKeyEnv} is not set (or empty), so there is no API key to require`,
            { field: 'api-key-env' },
            {
              hint: `export ${o.apiKeyEnv}=<key>, or leave out --api-key-env to serve without a key`,
            },
          );
        const s = await startServer({ ...o, ...(apiKey ? { apiKey } : {}) });
        process.stderr.write(`serving ${o.model} as '${o.modelName}' at ${s.url}\n`);
        const stop = async () => {
          await s.close();
          process.exit(0);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      },
    );
}
