// Runs one task on a backend: builds every prompt, asks the backend for log-likelihoods
// (multiple choice / loglikelihood) or generations (generate_until), scores each document, and
// aggregates the task's metrics. Per-example results are kept for reports and paired bootstraps.
import { ConfigError } from '../util/errors.ts';
import { CapabilityError, type LmBackend } from './backend.ts';
import { extractAnswer } from './extract.ts';
import {
  exactMatch,
  maxOverReferences,
  rougeLStemmed,
  scoreMultipleChoice,
  tokenF1,
} from './metrics.ts';
import {
  buildContext,
  type Doc,
  docChoices,
  docTarget,
  type MetricName,
  type Task,
} from './task.ts';

export interface ExampleResult {
  index: number;
  context: string;
  targets: string[];
  /** Generated text (after answer extraction) or the chosen choice text. */
  prediction: string;
  /** Raw generation before extraction, when it differs. */
  raw?: string;
  /** The lenient extraction's answer (tasks with answer_extraction), scored separately. */
  fallback?: string;
  /** Per-choice log-likelihoods for multiple choice. */
  lls?: number[];
  metrics: Partial<Record<MetricName, number>>;
}

export interface TaskResult {
  task: string;
  category?: string;
  backend: string;
  n: number;
  metrics: Partial<Record<MetricName, number>>;
  examples: ExampleResult[];
}

const mean = (xs: number[]): number =>
  xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;

/** Evaluates a task; metrics are means over documents (accuracy as a fraction in [0, 1]). */
export async function evaluateTask(
  task: Task,
  backend: LmBackend,
  opts: { limit?: number } = {},
): Promise<TaskResult> {
  const c = task.config;
  const limit = opts.limit ?? c.limit ?? task.docs.length;
  const docs: Doc[] = task.docs.slice(0, limit);
  const wanted = c.metric_list.map((m) => m.metric);
  // With answer extraction, exact match of the sturdier fallback reading is reported beside
  // the strict one (never in place of it), as BBH CoT results are.
  if (
    c.output_type === 'generate_until' &&
    c.answer_extraction !== 'none' &&
    wanted.includes('exact_match') &&
    !wanted.includes('exact_match_fallback')
  )
    wanted.push('exact_match_fallback');
  else if (
    wanted.includes('exact_match_fallback') &&
    (c.output_type !== 'generate_until' || c.answer_extraction === 'none')
  )
    throw new ConfigError(
      `task '${c.task}': exact_match_fallback needs a generate_until task with answer_extraction`,
      { file: task.file, field: 'metric_list' },
    );
  const examples: ExampleResult[] = [];

  if (c.output_type === 'multiple_choice' || c.output_type === 'loglikelihood') {
    if (!backend.supportsLoglikelihood) {
      throw new CapabilityError(
        `task '${c.task}' is ${c.output_type} but backend ${backend.name} cannot return log-probs`,
        'use a backend with log-likelihood support, or rewrite the task as generate_until',
      );
    }
    const items = docs.map((doc, i) => {
      const context = buildContext(task, i, doc);
      const choices = c.output_type === 'multiple_choice' ? docChoices(task, doc) : undefined;
      const target = docTarget(task, doc);
      const conts = choices ?? target.texts.slice(0, 1);
      return { i, context, choices, target, conts };
    });
    const reqs = items.flatMap((it) =>
      it.conts.map((cont) => ({ context: it.context, continuation: c.target_delimiter + cont })),
    );
    const res = await backend.loglikelihood(reqs);
    let k = 0;
    for (const it of items) {
      const part = res.slice(k, k + it.conts.length);
      k += it.conts.length;
      const lls = part.map((r) => r.logprob);
      const metrics: ExampleResult['metrics'] = {};
      let prediction: string;
      if (it.choices) {
        const s = scoreMultipleChoice(lls, it.choices, it.target.index!);
        if (wanted.includes('acc')) metrics.acc = s.acc;
        if (wanted.includes('acc_norm')) metrics.acc_norm = s.acc_norm;
        if (wanted.includes('acc_bytes')) metrics.acc_bytes = s.acc_bytes;
        if (wanted.includes('exact_match'))
          metrics.exact_match = Number(part[it.target.index!]!.isGreedy);
        prediction = it.choices[s.pred]!;
      } else {
        if (wanted.includes('exact_match')) metrics.exact_match = Number(part[0]!.isGreedy);
        prediction = it.conts[0]!;
      }
      examples.push({
        index: it.i,
        context: it.context,
        targets: it.target.texts,
        prediction,
        lls,
        metrics,
      });
    }
  } else {
    const until = c.generation_kwargs.until ?? [c.fewshot_delimiter];
    const items = docs.map((doc, i) => ({
      i,
      context: buildContext(task, i, doc),
      target: docTarget(task, doc),
    }));
    const gens = await backend.generate(
      items.map((it) => ({
        context: it.context,
        until,
        maxTokens: c.generation_kwargs.max_gen_toks,
        temperature: c.generation_kwargs.temperature,
      })),
    );
    items.forEach((it, j) => {
      const raw = gens[j]!;
      const { answer, fallback } = extractAnswer(raw, c.answer_extraction);
      const prediction = answer;
      const metrics: ExampleResult['metrics'] = {};
      const refs = it.target.texts;
      if (wanted.includes('exact_match'))
        metrics.exact_match = Number(maxOverReferences(exactMatch, prediction, refs));
      if (wanted.includes('exact_match_fallback'))
        metrics.exact_match_fallback = Number(maxOverReferences(exactMatch, fallback, refs));
      if (wanted.includes('exact_match_strict'))
        metrics.exact_match_strict = Number(refs.includes(prediction));
      if (wanted.includes('rougeL'))
        metrics.rougeL = maxOverReferences(rougeLStemmed, prediction, refs);
      if (wanted.includes('f1')) metrics.f1 = maxOverReferences(tokenF1, prediction, refs);
      examples.push({
        index: it.i,
        context: it.context,
        targets: refs,
        prediction,
        ...(raw !== prediction ? { raw } : {}),
        ...(c.answer_extraction !== 'none' ? { fallback } : {}),
        metrics,
      });
    });
  }
  const metrics: TaskResult['metrics'] = {};
  for (const m of wanted) metrics[m] = mean(examples.map((e) => e.metrics[m] ?? 0));
  return {
    task: c.task,
    ...(c.category ? { category: c.category } : {}),
    backend: backend.name,
    n: examples.length,
    metrics,
    examples,
  };
}
