// DPO from the demo's SFT model on preference data built from the collection (seen categories,
// the facts SFT trained on: right answer > near-miss / wrong fact / off-format), then held-out
// exact match before and after with the demo's harness and prompts (src/eval/heldout.ts): the
// held-out categories, and the held-out facts of the seen ones.
// Usage: npx tsx scripts/demo-dpo.ts <demo out_dir> [--steps=100] [--lr=1e-4] [--beta=0.1]
//   [--loss=sigmoid|sigmoid,sft] [--use-peft] [--batch=16] [--name=dpo (the output subdirectory)]
// The demo must have run with its default config (`instructkit demo --out <dir>`), so the
// world (seed 0, default lexicon) and the tuned model in <dir>/tuned match.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  builtinCollection,
  INVENTED_CATEGORY,
  renderTask,
  splitFacts,
} from '../src/data/collection/index.ts';
import { collectionPreferences } from '../src/data/collection/preference.ts';
import { evaluateHeldout, type HeldoutResult, type HeldoutTask } from '../src/eval/heldout.ts';
import { LocalBackend } from '../src/eval/local.ts';
import { makeTask } from '../src/eval/task.ts';
import { CausalLM } from '../src/models/lm.ts';
import { demoPrompt, parseDemoConfig } from '../src/pipeline/demo.ts';
import { parseDpoConfig, trainDpo } from '../src/train/dpo.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: npx tsx scripts/demo-dpo.ts <demo out_dir> [--steps=N] ...');
const arg = (k: string, d: string) =>
  process.argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3) ?? d;
const steps = Number(arg('steps', '100'));
const lr = Number(arg('lr', '1e-4'));
const beta = Number(arg('beta', '0.1'));
const loss = arg('loss', 'sigmoid').split(',');
const batch = Number(arg('batch', '16'));
const usePeft = process.argv.includes('--use-peft');

const cfg = parseDemoConfig({});
const c = builtinCollection({ seed: cfg.seed, sizes: cfg.lexicon });
const held = new Set(cfg.heldout_categories);

// The demo's eval tasks (pipeline/demo.ts buildData): same renders, seeds and prompts.
const evalTasks: HeldoutTask[] = [];
for (const t of c.tasks) {
  if (t.category === INVENTED_CATEGORY) continue;
  const facts = held.has(t.category)
    ? t.facts
    : splitFacts(t, cfg.seen_eval_fraction, cfg.seed).eval;
  const docs = renderTask(c, t, {
    variant: 'zero_shot',
    seed: cfg.seed + 7,
    facts,
    roundRobin: true,
  }).map((e) => ({ prompt: demoPrompt(e.input), answer: e.target }));
  if (docs.length === 0) continue;
  evalTasks.push({
    group: held.has(t.category) ? 'heldout' : 'seen',
    category: t.category,
    task: makeTask(
      {
        task: t.name,
        category: t.category,
        doc_to_text: 'prompt',
        doc_to_target: 'answer',
        output_type: 'generate_until',
        generation_kwargs: { until: ['\n'], max_gen_toks: 8 },
        metric_list: [{ metric: 'exact_match' }],
      },
      docs,
    ),
  });
}

// Preferences on the facts SFT trained on (seen categories; invented relations: all facts).
const prefs = [
  ...collectionPreferences(c, {
    seed: cfg.seed,
    excludeCategories: [...held, INVENTED_CATEGORY],
    facts: 'train',
    evalFraction: cfg.seen_eval_fraction,
    splitSeed: cfg.seed,
    prompt: demoPrompt,
  }),
  ...collectionPreferences(c, {
    seed: cfg.seed,
    categories: [INVENTED_CATEGORY],
    prompt: demoPrompt,
  }),
].map((p) => p.record);

const score = (r: HeldoutResult, g: string) => r.byGroup.find((x) => x.name === g)?.score ?? NaN;
const lm = await CausalLM.load(join(dir, 'tuned'));
const t0 = performance.now();
const before = await evaluateHeldout(evalTasks, new LocalBackend(lm, { name: 'sft' }), {
  seed: cfg.seed,
});
const out = join(dir, arg('name', 'dpo'));
const r = await trainDpo(
  parseDpoConfig({
    model_name_or_path: join(dir, 'tuned'),
    train_file: '(collection preferences)',
    output_dir: out,
    learning_rate: lr,
    beta,
    loss_type: loss,
    max_steps: steps,
    per_device_train_batch_size: batch,
    max_length: cfg.max_length,
    lr_scheduler_type: 'cosine',
    warmup_steps: Math.min(10, steps),
    logging_steps: 10,
    precompute_ref_log_probs: true,
    use_peft: usePeft,
    seed: cfg.seed,
    disable_tqdm: true,
  }),
  { model: lm, train: prefs },
);
const after = await evaluateHeldout(evalTasks, new LocalBackend(lm, { name: 'dpo' }), {
  seed: cfg.seed,
});
const last = r.logs[r.logs.length - 1]!;
const result = {
  demo: dir,
  pairs: r.pairs,
  steps: r.steps,
  learning_rate: lr,
  beta,
  loss_type: loss,
  use_peft: usePeft,
  final_loss: last.loss,
  'rewards/accuracies': last['rewards/accuracies'],
  'rewards/margins': last['rewards/margins'],
  'logps/chosen': last['logps/chosen'],
  heldout_sft: score(before, 'heldout'),
  heldout_dpo: score(after, 'heldout'),
  seen_sft: score(before, 'seen'),
  seen_dpo: score(after, 'seen'),
  n_heldout: before.byGroup.find((g) => g.name === 'heldout')?.n,
  n_seen: before.byGroup.find((g) => g.name === 'seen')?.n,
  seconds: Math.round((performance.now() - t0) / 1000),
};
writeFileSync(join(out, 'demo_dpo.json'), `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result)}\n`);
