// The demo, end to end on the built-in task collection, as FLAN did with a pretrained LM:
// (a) pretrain a tiny base model on the collection's knowledge text (facts, no instructions),
// (b) evaluate it zero-shot on held-out categories (and held-out facts of seen categories),
// (c) instruction-tune it on the seen categories, (d) evaluate again with the same harness,
// (e) export HF safetensors and GGUF, (f) write results.json and report.html.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { builtinCollection, DEMO_HELDOUT_CATEGORIES } from '../data/collection/index.ts';
import { parseConfig } from '../data/config.ts';
import { compareHeldout, evaluateHeldout, type HeldoutResult } from '../eval/heldout.ts';
import { LocalBackend } from '../eval/local.ts';
import { comparisonHtml, comparisonMarkdown } from '../eval/report.ts';
import { saveCheckpoint } from '../models/checkpoint.ts';
import { exportGguf } from '../models/gguf-export.ts';
import { CausalLM } from '../models/lm.ts';

export { demoPrompt } from './demo-data.ts';

import { parseSftConfig, type StepLog, trainSft } from '../train/sft.ts';
import { buildData, newBase } from './demo-data.ts';
import { accuracyChartSvg, type LossPoint, lossChartSvg, reportHtml } from './report.ts';

export const DemoConfig = z.strictObject({
  out_dir: z.string().default('runs/demo'),
  seed: z.number().int().default(0),
  /**
   * An HF model directory to use as the base instead of pretraining one (for example the
   * `base/` directory an earlier run wrote); it must have been pretrained on this seed's world.
   */
  base_model: z.string().optional(),
  /** A few-second version for the test suite (tiny budgets; the numbers mean nothing). */
  quick: z.boolean().default(false),
  heldout_categories: z.array(z.string()).default([...DEMO_HELDOUT_CATEGORIES]),
  vocab_size: z.number().int().positive().default(1024),
  max_length: z.number().int().positive().default(128),
  /** Lexicon sizes of the built-in collection (a smaller world is memorised more reliably). */
  lexicon: z
    .strictObject({
      things: z.number().int().positive(),
      countries: z.number().int().positive(),
      adjectives: z.number().int().positive(),
      verbs: z.number().int().positive(),
      /** Invented relations over things, trained on but not evaluated (relation diversity). */
      relations: z.number().int().min(0).default(0),
      relation_facts: z.number().int().positive().default(8),
    })
    .default({
      things: 40,
      countries: 16,
      adjectives: 20,
      verbs: 20,
      relations: 64,
      relation_facts: 8,
    }),
  pretrain_steps: z.number().int().positive().default(900),
  pretrain_learning_rate: z.number().positive().default(3e-3),
  sft_steps: z.number().int().positive().default(300),
  sft_learning_rate: z.number().positive().default(1e-3),
  /** Share of the knowledge text mixed into SFT (rehearsal, so facts are not forgotten). */
  sft_knowledge_mix: z.number().min(0).max(1).default(1),
  /** Templates sampled per training fact. */
  templates_per_fact: z.number().int().positive().default(2),
  /** Share of each seen task's facts kept out of SFT to test on (seen categories, new facts). */
  seen_eval_fraction: z.number().min(0).max(0.9).default(0.2),
  per_device_train_batch_size: z.number().int().positive().default(16),
});
export type DemoConfig = z.infer<typeof DemoConfig>;

export function parseDemoConfig(raw: unknown): DemoConfig {
  return parseConfig(DemoConfig, raw);
}

export interface DemoResults {
  heldout_base: number;
  heldout_tuned: number;
  seen_base: number;
  seen_tuned: number;
  /**
   * Share of the held-out facts the model completes when they are stated as a sentence prefix
   * ("The opposite of flon is"): whether it knows the answers it is asked for.
   */
  heldout_knowledge_base: number;
  heldout_knowledge_tuned: number;
  heldout_categories: string[];
  n_heldout: number;
  n_seen: number;
  seconds: Record<string, number>;
  out_dir: string;
}

const groupScore = (r: HeldoutResult, g: string): number =>
  r.byGroup.find((x) => x.name === g)?.score ?? Number.NaN;

/** Runs the whole demo; `log` receives one line per stage. */
export async function runDemo(
  raw: Partial<DemoConfig> = {},
  log: (line: string) => void = () => {},
): Promise<DemoResults> {
  const cfg = parseDemoConfig(raw);
  const budget = cfg.quick
    ? { pre: 6, sft: 6, vocab: 512 }
    : { pre: cfg.pretrain_steps, sft: cfg.sft_steps, vocab: cfg.vocab_size };
  const seconds: Record<string, number> = {};
  let t = performance.now();
  const lap = (name: string) => {
    seconds[name] = Math.round((performance.now() - t) / 100) / 10;
    log(`${name}: ${seconds[name]} s`);
    t = performance.now();
  };
  mkdirSync(join(cfg.out_dir, 'data'), { recursive: true });

  // Data and tokenizer.
  const c = builtinCollection({ seed: cfg.seed, sizes: cfg.lexicon });
  const data = buildData(c, cfg);
  writeFileSync(join(cfg.out_dir, 'data', 'knowledge.txt'), `${data.knowledge.join('\n')}\n`);
  writeFileSync(
    join(cfg.out_dir, 'data', 'sft.jsonl'),
    `${data.sft.map((r) => JSON.stringify(r)).join('\n')}\n`,
  );
  const vocabText = [
    ...data.knowledge,
    ...data.sft.map((r) => r.prompt + r.completion),
    ...data.evalTasks.flatMap((e) => e.task.docs.map((d) => String(d.prompt))),
  ];
  const lm = cfg.base_model
    ? await CausalLM.load(cfg.base_model)
    : newBase(vocabText, budget.vocab, cfg);
  const spec = lm.spec;
  const tokenizer = lm.tokenizer!;
  log(
    `data: ${data.knowledge.length} knowledge sentences, ${data.sft.length} SFT examples, ${data.evalTasks.length} eval tasks; model ${spec.numLayers} layers, d ${spec.hiddenSize}, vocab ${spec.vocabSize}`,
  );
  lap('data');

  const common = {
    model_name_or_path: 'builtin:tiny',
    train_file: '(in memory)',
    max_length: cfg.max_length,
    packing: true,
    per_device_train_batch_size: cfg.per_device_train_batch_size,
    logging_steps: cfg.quick ? 1 : 10,
    lr_scheduler_type: 'cosine' as const,
    seed: cfg.seed,
    disable_tqdm: cfg.quick,
  };
  // (a) pretraining on the knowledge text: loss on every token (unless a base was given).
  const pre = cfg.base_model
    ? { logs: [] as StepLog[], finalLoss: Number.NaN }
    : await trainSft(
        parseSftConfig({
          ...common,
          output_dir: join(cfg.out_dir, 'base'),
          learning_rate: cfg.pretrain_learning_rate,
          max_steps: budget.pre,
          completion_only_loss: false,
          warmup_steps: Math.min(50, budget.pre),
        }),
        { model: lm, train: data.knowledge.map((text) => ({ text })) },
      );
  lap('pretrain');

  // (b) the base model, zero-shot.
  const backend = (name: string) => new LocalBackend(lm, { name });
  const baseRes = await evaluateHeldout(data.evalTasks, backend('base'), { seed: cfg.seed });
  const baseProbe = await evaluateHeldout(data.probeTasks, backend('base'), { seed: cfg.seed });
  lap('eval base');

  // (c) instruction tuning on the seen categories.
  const sftData: Record<string, unknown>[] = [...data.sft];
  if (cfg.sft_knowledge_mix > 0)
    for (const text of data.knowledge.slice(
      0,
      Math.round(cfg.sft_knowledge_mix * data.knowledge.length),
    ))
      sftData.push({ text });
  const sft = await trainSft(
    parseSftConfig({
      ...common,
      output_dir: join(cfg.out_dir, 'tuned'),
      learning_rate: cfg.sft_learning_rate,
      max_steps: budget.sft,
      completion_only_loss: true,
      warmup_steps: Math.min(20, budget.sft),
    }),
    { model: lm, train: sftData },
  );
  lap('sft');

  // (d) the tuned model, same harness, same prompts.
  const tunedRes = await evaluateHeldout(data.evalTasks, backend('tuned'), { seed: cfg.seed });
  const tunedProbe = await evaluateHeldout(data.probeTasks, backend('tuned'), { seed: cfg.seed });
  lap('eval tuned');

  // (e) export: HF directory (written by the trainer) and GGUF.
  await saveCheckpoint(join(cfg.out_dir, 'tuned'), {
    spec: lm.spec,
    tensors: lm.weights,
    tokenizer,
    generationConfig: null,
  });
  await exportGguf(join(cfg.out_dir, 'tuned.gguf'), lm.spec, lm.weights, {
    tokenizer,
    fileType: 'f32',
  });
  lap('export');

  // (f) results and report.
  const cmp = compareHeldout(baseRes, tunedRes, data.evalTasks, { seed: cfg.seed });
  const results: DemoResults = {
    heldout_base: groupScore(baseRes, 'heldout'),
    heldout_tuned: groupScore(tunedRes, 'heldout'),
    seen_base: groupScore(baseRes, 'seen'),
    seen_tuned: groupScore(tunedRes, 'seen'),
    heldout_knowledge_base: groupScore(baseProbe, 'heldout'),
    heldout_knowledge_tuned: groupScore(tunedProbe, 'heldout'),
    heldout_categories: cfg.heldout_categories,
    n_heldout: baseRes.byGroup.find((g) => g.name === 'heldout')?.n ?? 0,
    n_seen: baseRes.byGroup.find((g) => g.name === 'seen')?.n ?? 0,
    seconds,
    out_dir: cfg.out_dir,
  };
  writeFileSync(
    join(cfg.out_dir, 'results.json'),
    `${JSON.stringify({ ...results, comparison: cmp }, null, 2)}\n`,
  );
  writeFileSync(
    join(cfg.out_dir, 'comparison.md'),
    comparisonMarkdown(cmp, { a: 'base', b: 'tuned' }),
  );
  const curve = (logs: StepLog[], series: string, offset: number): LossPoint[] =>
    logs.map((l) => ({ phase: series, step: l.step + offset, loss: l.loss, series }));
  const charts = [
    await lossChartSvg(
      [
        ...curve(pre.logs, 'pretraining (all tokens)', 0),
        ...curve(sft.logs, 'instruction tuning (answers)', budget.pre),
      ],
      'Training loss',
    ),
    await accuracyChartSvg(
      ['heldout', 'seen'].flatMap((g) => [
        { group: g, model: 'base', accuracy: 100 * groupScore(baseRes, g) },
        { group: g, model: 'tuned', accuracy: 100 * groupScore(tunedRes, g) },
      ]),
    ),
  ];
  const heldTasks = new Set(
    data.evalTasks.filter((e) => e.group === 'heldout').map((e) => e.task.config.task),
  );
  const samples = tunedRes.tasks
    .filter((r) => heldTasks.has(r.task))
    .flatMap((r) => {
      const b = baseRes.tasks.find((x) => x.task === r.task)!;
      return r.examples.slice(0, 2).map((e, i) => ({
        category: r.category ?? '',
        prompt: e.context,
        target: e.targets[0]!,
        base: b.examples[i]!.prediction,
        tuned: e.prediction,
      }));
    });
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  writeFileSync(
    join(cfg.out_dir, 'report.html'),
    reportHtml({
      title: 'instructkit demo: instruction tuning a tiny model, FLAN-style',
      summary: [
        `Held-out categories (${cfg.heldout_categories.join(', ')}), exact match: base ${pct(results.heldout_base)} → tuned ${pct(results.heldout_tuned)} (n = ${results.n_heldout}).`,
        `Seen categories, facts not used for tuning: base ${pct(results.seen_base)} → tuned ${pct(results.seen_tuned)} (n = ${results.n_seen}).`,
        `Knowledge check: stated as a sentence to complete ("${data.probeTasks[0]?.task.docs[0]?.prompt ?? ''} …"), the held-out facts are completed correctly by the base ${pct(results.heldout_knowledge_base)} and the tuned model ${pct(results.heldout_knowledge_tuned)} of the time; the questions above ask for the same facts.`,
        cfg.base_model
          ? `Base model: ${cfg.base_model}; tuned ${budget.sft} steps on ${data.sft.length} instruction examples (final loss ${sft.finalLoss.toFixed(3)}).`
          : `Base model: pretrained ${budget.pre} steps on ${data.knowledge.length} knowledge sentences (final loss ${pre.finalLoss.toFixed(3)}); tuned ${budget.sft} steps on ${data.sft.length} instruction examples (final loss ${sft.finalLoss.toFixed(3)}).`,
        `Time: ${Object.entries(seconds)
          .map(([k, v]) => `${k} ${v} s`)
          .join(', ')}.`,
      ],
      charts,
      table: comparisonHtml(cmp, {
        a: 'base',
        b: 'tuned',
        caption: 'Exact match (%), tuned vs base, paired bootstrap 95% CI',
      }),
      samples,
      settings: {
        ...cfg,
        vocab_size: budget.vocab,
        pretrain_steps: budget.pre,
        sft_steps: budget.sft,
      },
    }),
  );
  lap('report');
  return results;
}
