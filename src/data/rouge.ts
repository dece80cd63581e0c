// ROUGE-L with the tokenisation and arithmetic of Google's rouge_score (bitwise-equal P, R, F,
// with or without the NLTK-mode Porter stemmer), a brute-force best match, and RougeLIndex, the
// fast Self-Instruct near-duplicate filter. This file is the public entry point: the tokenizer
// and F order are in rouge-core.ts, the index in rouge-index.ts (token interning in
// rouge-vocab.ts), the stemmer in porter.ts. Besides the agreed API it exports the building
// blocks lcsLength, fmeasureFromLcs and rougeLFromLcs, for callers with their own tokens.
import {
  lcsLength,
  type RougeOptions,
  type RougeScore,
  rougeLFromLcs,
  rougeTokenize,
} from './rouge-core.ts';
import type { BestMatch } from './rouge-index.ts';

export {
  fmeasureFromLcs,
  lcsLength,
  type RougeOptions,
  type RougeScore,
  rougeLFromLcs,
  rougeTokenize,
} from './rouge-core.ts';
export { type BestMatch, RougeLIndex, type RougeLIndexOptions } from './rouge-index.ts';

/** ROUGE-L of two token lists: rouge_score's `_score_lcs(target, prediction)`. */
export function rougeLFromTokens(
  target: readonly string[],
  prediction: readonly string[],
): RougeScore {
  return rougeLFromLcs(lcsLength(target, prediction), target.length, prediction.length);
}

/**
 * rouge_score's `RougeScorer(['rougeL'], use_stemmer).score(target, prediction)['rougeL']`:
 * precision is against the prediction, recall against the target.
 * @example rougeL('the cat sat', 'the cat sat down').fmeasure // 0.8571428571428571
 */
export function rougeL(target: string, prediction: string, opts: RougeOptions = {}): RougeScore {
  return rougeLFromTokens(rougeTokenize(target, opts), rougeTokenize(prediction, opts));
}

/**
 * The brute-force Self-Instruct comparison: scores the query (as target) against every pool
 * entry (as prediction) from the raw strings, re-tokenising both each time as rouge_score does.
 * Returns the maximum F, the first index reaching it (-1 for an empty pool) and the tie count.
 * RougeLIndex.best gives the same answer much faster; this is its reference.
 */
export function bruteForceBest(
  query: string,
  pool: readonly string[],
  opts: RougeOptions = {},
): BestMatch {
  let score = 0;
  let index = -1;
  let nAtMax = 0;
  for (let i = 0; i < pool.length; i++) {
    const f = rougeL(query, pool[i]!, opts).fmeasure;
    if (index < 0 || f > score) {
      score = f;
      index = i;
      nAtMax = 1;
    } else if (f === score) nAtMax++;
  }
  return { score, index, nAtMax };
}
