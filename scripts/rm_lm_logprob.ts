// Is the reward model's held-out task learnable from the LM at all? For the held-out pairs of
// scripts/rm_heldout.ts (same seed and construction), the share where the causal LM itself gives
// the chosen completion (answer + EOS) a higher log-probability than the rejected one, per kind
// of rejected completion: sum of token log-probs, and mean per token. If the LM does not rank a
// held-out fact's right answer over a wrong one, a reward model started from it has nothing to
// read the fact from.
//
//   npx tsx scripts/rm_lm_logprob.ts --model runs/demo/base
//   npx tsx scripts/rm_lm_logprob.ts --model runs/demo/tuned
//
// Prints one JSON line: accuracy overall and per kind, for both reductions.
import { parseArgs } from 'node:util';
import { builtinCollection } from '../src/data/collection/index.ts';
import { collectionPreferences, REJECTED_KINDS } from '../src/data/collection/preference.ts';
import { CausalLM } from '../src/models/lm.ts';
import { parseDemoConfig } from '../src/pipeline/demo.ts';
import { loadTokenizedPreferences } from '../src/train/preference-tokenize.ts';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    seed: { type: 'string', default: '0' },
    /** The eval split of the seen categories' facts instead of the held-out categories. */
    'seen-eval': { type: 'boolean', default: false },
  },
});
if (!a.model) throw new Error('--model <dir> (a causal LM) is required');
const seed = Number(a.seed);
const demo = parseDemoConfig({ seed });
const world = builtinCollection({ seed, sizes: demo.lexicon });
const lm = await CausalLM.load(a.model);
const tok = lm.tokenizer!;
const eosId = tok.eos?.id ?? (lm.spec.eosTokenId as number);

/** Sum and count of log p(completion tokens | prompt, earlier tokens). */
async function logprob(prompt: number[], completion: number[]): Promise<[number, number]> {
  const ids = [...prompt, ...completion];
  const l = await lm.logits(ids);
  const V = l.shape[2]!;
  let sum = 0;
  for (let t = prompt.length; t < ids.length; t++) {
    const row = l.data.subarray((t - 1) * V, t * V);
    let m = -Infinity;
    for (const v of row) m = Math.max(m, v);
    let z = 0;
    for (const v of row) z += Math.exp(v - m);
    sum += row[ids[t]!]! - m - Math.log(z);
  }
  return [sum, completion.length];
}

const out: Record<string, { sum: number; mean: number; pairs: number }> = {};
let all = 0;
let rightSum = 0;
let rightMean = 0;
for (const kind of REJECTED_KINDS) {
  const recs = collectionPreferences(world, {
    seed: seed + 1,
    ...(a['seen-eval']
      ? {
          excludeCategories: demo.heldout_categories,
          facts: 'eval' as const,
          evalFraction: demo.seen_eval_fraction,
          splitSeed: seed,
        }
      : { categories: demo.heldout_categories }),
    format: 'pairs',
    rejected: [kind],
  }).map((x) => x.record as unknown as Record<string, unknown>);
  const { examples } = await loadTokenizedPreferences(recs, tok, {
    eosId,
    maxLength: demo.max_length,
    chatTemplate: null,
  });
  let s = 0;
  let m = 0;
  for (const ex of examples) {
    const best = ex.ranks.indexOf(Math.min(...ex.ranks));
    const [cs, cn] = await logprob(ex.prompt, ex.completions[best]!);
    const [rs, rn] = await logprob(ex.prompt, ex.completions[1 - best]!);
    if (cs > rs) s++;
    if (cs / cn > rs / rn) m++;
  }
  out[kind] = { sum: s / examples.length, mean: m / examples.length, pairs: examples.length };
  all += examples.length;
  rightSum += s;
  rightMean += m;
}
process.stdout.write(
  `${JSON.stringify({ model: a.model, set: a['seen-eval'] ? 'seen categories, eval facts' : 'held-out categories', accuracy_sum: rightSum / all, accuracy_mean: rightMean / all, pairs: all, by_kind: out })}\n`,
);
