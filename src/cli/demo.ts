// `instructkit demo`: the README's main command. Runs src/pipeline/demo.ts on the built-in task
// collection and prints where the report and results went.
import type { Command } from 'commander';
import { runDemo } from '../pipeline/demo.ts';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'Pretrain a tiny model on facts, instruction-tune it, evaluate held-out categories before and after, export, report',
    )
    .option('--out <dir>', 'output directory', 'runs/demo')
    .option('--seed <n>', 'random seed', (v) => Number(v), 0)
    .option('--quick', 'a few-second run for tests (the numbers mean nothing)')
    .action(async (o: { out: string; seed: number; quick?: boolean }) => {
      const r = await runDemo({ out_dir: o.out, seed: o.seed, quick: o.quick ?? false }, (l) =>
        process.stderr.write(`demo: ${l}\n`),
      );
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      process.stdout.write(
        [
          `held-out categories (${r.heldout_categories.join(', ')}): base ${pct(r.heldout_base)} -> tuned ${pct(r.heldout_tuned)} (n=${r.n_heldout})`,
          `seen categories, new facts: base ${pct(r.seen_base)} -> tuned ${pct(r.seen_tuned)} (n=${r.n_seen})`,
          `results: ${r.out_dir}/results.json  report: ${r.out_dir}/report.html  model: ${r.out_dir}/tuned (HF), ${r.out_dir}/tuned.gguf`,
          '',
        ].join('\n'),
      );
    });
}
