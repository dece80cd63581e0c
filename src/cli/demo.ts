// `instructkit demo`: the README's main command. Runs src/pipeline/demo.ts on the built-in task
// collection and prints where the report and results went.
import type { Command } from 'commander';
import { loadConfig } from '../data/config.ts';
import { DemoConfig, runDemo } from '../pipeline/demo.ts';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'Pretrain a tiny model on facts, instruction-tune it, evaluate held-out categories before and after, export, report',
    )
    .option(
      '--config <file>',
      'YAML file with demo settings (keys of DemoConfig; flags override it)',
    )
    .option('--out <dir>', 'output directory (default: runs/demo)')
    .option('--seed <n>', 'random seed (default: 0)', (v) => Number(v))
    .option(
      '--base <dir>',
      "use this HF model directory as the base instead of pretraining (an earlier run's base/)",
    )
    .option('--quick', 'a few-second run for tests (the numbers mean nothing)')
    .action(
      async (o: {
        config?: string;
        out?: string;
        seed?: number;
        base?: string;
        quick?: boolean;
      }) => {
        const cfg = await loadConfig(
          DemoConfig,
          o.config,
          { out_dir: o.out, seed: o.seed, base_model: o.base, quick: o.quick },
          ['out_dir', 'base_model'],
        );
        const r = await runDemo(cfg, (l) => process.stderr.write(`demo: ${l}\n`));
        const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
        process.stdout.write(
          [
            `held-out categories (${r.heldout_categories.join(', ')}): base ${pct(r.heldout_base)} -> tuned ${pct(r.heldout_tuned)} (n=${r.n_heldout})`,
            `seen categories, new facts: base ${pct(r.seen_base)} -> tuned ${pct(r.seen_tuned)} (n=${r.n_seen})`,
            `held-out facts as sentences to complete (knowledge check): base ${pct(r.heldout_knowledge_base)}, tuned ${pct(r.heldout_knowledge_tuned)}`,
            `results: ${r.out_dir}/results.json  report: ${r.out_dir}/report.html  model: ${r.out_dir}/tuned (HF), ${r.out_dir}/tuned.gguf`,
            '',
          ].join('\n'),
        );
      },
    );
}
