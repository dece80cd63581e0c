// GRPO from the demo's SFT model with an exact-match reward on the seen categories' training
// facts (prompts rendered as the demo's SFT data), then held-out exact match before and after
// with the demo's harness and prompts (src/eval/heldout.ts) and the paired bootstrap interval of
// the change (compareHeldout). The reward cuts a completion at its first newline, as the eval's
// `until: ['\n']` does.
// Usage: npx tsx scripts/demo-grpo.ts <demo out_dir> [--steps=60] [--lr=1e-5] [--beta=0]
//   [--generations=8] [--prompts=2] [--name=grpo]
// The demo must have run with its default config (`instructkit demo --out <dir>`), so the world
// (seed 0, default lexicon) and the tuned model in <dir>/tuned match.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  builtinCollection,
  INVENTED_CATEGORY,
  renderTask,
  splitFacts,
} from '../src/data/collection/index.ts';
import { compareHeldout, evaluateHeldout, type HeldoutTask } from '../src/eval/heldout.ts';
import { LocalBackend } from '../src/eval/local.ts';
import { makeTask } from '../src/eval/task.ts';
import { CausalLM } from '../src/models/lm.ts';
import { demoPrompt, parseDemoConfig } from '../src/pipeline/demo.ts';
import { parseGrpoConfig, trainGrpo } from '../src/train/grpo.ts';
import { normalizeAnswer, type RewardSource } from '../src/train/rewards.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: npx tsx scripts/demo-grpo.ts <demo out_dir> [--steps=N] ...');
const arg = (k: string, d: string) =>
  process.argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3) ?? d;
const steps = Number(arg('steps', '60'));
const lr = Number(arg('lr', '1e-5'));
const beta = Number(arg('beta', '0'));
const G = Number(arg('generations', '8'));
const promptsPerStep = Number(arg('prompts', '2'));

const cfg = parseDemoConfig({});
const c = builtinCollection({ seed: cfg.seed, sizes: cfg.lexicon });
const held = new Set(cfg.heldout_categories);

const evalTasks: HeldoutTask[] = [];
const train: { prompt: string; reference: string }[] = [];
for (const t of c.tasks) {
  if (t.category === INVENTED_CATEGORY) continue;
  const split = held.has(t.category) ? undefined : splitFacts(t, cfg.seen_eval_fraction, cfg.seed);
  if (split)
    for (const e of renderTask(c, t, {
      variant: 'zero_shot',
      seed: cfg.seed + 1,
      facts: split.train,
    }))
      train.push({ prompt: demoPrompt(e.input), reference: e.target });
  const docs = renderTask(c, t, {
    variant: 'zero_shot',
    seed: cfg.seed + 7,
    facts: split ? split.eval : t.facts,
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

const firstLine: RewardSource = {
  name: 'exact_match(reference, first line)',
  id: 'exact_match',
  async score(b) {
    return b.map((x) =>
      normalizeAnswer(x.completion.split('\n')[0]!) === normalizeAnswer(String(x.record.reference))
        ? 1
        : 0,
    );
  },
};

const lm = await CausalLM.load(join(dir, 'tuned'));
const t0 = performance.now();
const before = await evaluateHeldout(evalTasks, new LocalBackend(lm, { name: 'sft' }), {
  seed: cfg.seed,
});
const out = join(dir, arg('name', 'grpo'));
const r = await trainGrpo(
  parseGrpoConfig({
    model_name_or_path: join(dir, 'tuned'),
    train_file: '(collection prompts)',
    output_dir: out,
    reward_funcs: [{ type: 'exact_match' }],
    learning_rate: lr,
    beta,
    num_generations: G,
    per_device_train_batch_size: G * promptsPerStep,
    max_prompt_length: 96,
    max_completion_length: 8,
    max_steps: steps,
    logging_steps: 5,
    seed: cfg.seed,
    disable_tqdm: true,
  }),
  { model: lm, train, rewards: [firstLine] },
);
const after = await evaluateHeldout(evalTasks, new LocalBackend(lm, { name: 'grpo' }), {
  seed: cfg.seed,
});
const cmp = compareHeldout(before, after, evalTasks, { seed: cfg.seed });
const group = (g: string) => cmp.rows.find((x) => x.level === 'group' && x.name === g);
const result = {
  demo: dir,
  prompts: train.length,
  steps: r.steps,
  learning_rate: lr,
  beta,
  num_generations: G,
  reward_first: r.logs[0]?.reward,
  reward_last: r.logs[r.logs.length - 1]?.reward,
  kl_range: [Math.min(...r.logs.map((l) => l.kl ?? 0)), Math.max(...r.logs.map((l) => l.kl ?? 0))],
  heldout: group('heldout'),
  seen: group('seen'),
  seconds: Math.round((performance.now() - t0) / 1000),
};
writeFileSync(join(out, 'demo_grpo.json'), `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result)}\n`);
