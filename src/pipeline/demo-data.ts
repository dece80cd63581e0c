// The demo's world as data: the instruction-tuning set, the evaluation tasks (held-out
// categories, seen categories with new facts) and the knowledge probe, built from the built-in
// collection; and the base model's tokenizer and shape. Kept apart from the stages that use it.
import {
  type Collection,
  INVENTED_CATEGORY,
  knowledgeCorpus,
  renderTask,
  splitFacts,
} from '../data/collection/index.ts';
import type { HeldoutTask } from '../eval/heldout.ts';
import { makeTask } from '../eval/task.ts';
import { CausalLM } from '../models/lm.ts';
import { tinyLlamaConfig, trainTinyTokenizer } from '../models/tiny.ts';
import { ConfigError } from '../util/errors.ts';
import type { DemoConfig } from './demo.ts';

/** The prompt format of the demo: a zero-shot instruction followed by "Answer:". */
export const demoPrompt = (input: string): string => `${input}\nAnswer:`;

export interface DemoData {
  knowledge: string[];
  sft: { prompt: string; completion: string }[];
  evalTasks: HeldoutTask[];
  /** The held-out facts as sentence prefixes to complete (knowledge, not instructions). */
  probeTasks: HeldoutTask[];
  /**
   * The multilingual check: the same held-out and seen questions asked with instructions written
   * in another language (groups 'heldout' and 'seen', as in evalTasks), one entry per language.
   * English is evalTasks itself.
   */
  multilingual: { lang: string; tasks: HeldoutTask[] }[];
}

export function buildData(c: Collection, cfg: DemoConfig): DemoData {
  const held = new Set(cfg.heldout_categories);
  for (const h of held) {
    if (!c.tasks.some((t) => t.category === h))
      throw new ConfigError(`no category '${h}' in the collection`, {
        field: 'heldout_categories',
      });
  }
  const sft: { prompt: string; completion: string }[] = [];
  const evalTasks: HeldoutTask[] = [];
  const probeTasks: HeldoutTask[] = [];
  const add = (
    t: (typeof c.tasks)[number],
    docs: { prompt: string; answer: string }[],
    group: string,
    into: HeldoutTask[] = evalTasks,
  ) => {
    if (docs.length === 0) return;
    into.push({
      group,
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
  };
  for (const t of c.tasks) {
    if (held.has(t.category)) {
      const docs = renderTask(c, t, {
        variant: 'zero_shot',
        seed: cfg.seed + 7,
        roundRobin: true,
      }).map((e) => ({ prompt: demoPrompt(e.input), answer: e.target }));
      add(t, cfg.quick ? docs.slice(0, 4) : docs, 'heldout');
      const probe = t.facts
        .filter((f) => f.rationale.endsWith(` ${f.y}.`))
        .map((f) => ({ prompt: f.rationale.slice(0, -(f.y.length + 2)), answer: f.y }));
      add(t, cfg.quick ? probe.slice(0, 4) : probe, 'heldout', probeTasks);
      continue;
    }
    const invented = t.category === INVENTED_CATEGORY;
    const { train, eval: ev } = invented
      ? { train: t.facts, eval: [] }
      : splitFacts(t, cfg.seen_eval_fraction, cfg.seed);
    for (let s = 0; s < cfg.templates_per_fact; s++) {
      for (const e of renderTask(c, t, {
        variant: 'zero_shot',
        seed: cfg.seed + 1 + s,
        facts: train,
      })) {
        sft.push({ prompt: demoPrompt(e.input), completion: ` ${e.target}` });
      }
    }
    const docs = renderTask(c, t, {
      variant: 'zero_shot',
      seed: cfg.seed + 7,
      facts: ev,
      roundRobin: true,
    }).map((e) => ({ prompt: demoPrompt(e.input), answer: e.target }));
    add(t, cfg.quick ? docs.slice(0, 2) : docs, 'seen');
  }
  return {
    knowledge: knowledgeCorpus(c, { seed: cfg.seed }),
    sft,
    evalTasks,
    probeTasks,
    multilingual: [],
  };
}

/** A randomly initialised tiny LLaMA with a BPE vocabulary trained on the demo's text. */
export function newBase(text: string[], vocab: number, cfg: DemoConfig): CausalLM {
  const { tokenizer } = trainTinyTokenizer(text, vocab);
  const spec = tinyLlamaConfig({
    vocabSize: vocab,
    maxPositions: cfg.max_length,
    eosTokenId: tokenizer.eos!.id,
    padTokenId: tokenizer.pad!.id,
  });
  return CausalLM.random(spec, cfg.seed, tokenizer);
}
