// LLM-as-judge pairwise comparison. Each pair is judged twice with the responses swapped, to
// cancel position bias: a model wins a pair only when both orders prefer it; disagreeing orders
// count as a tie. Reports win / tie / loss, how often the two orders agree, and unparseable
// verdicts. The judge is any OpenAI-compatible endpoint, through LlmClient.
import type { LlmClient } from '../synth/client.ts';

export interface JudgeItem {
  id?: string;
  instruction: string;
  input?: string;
  /** Response of system A (e.g. the tuned model). */
  a: string;
  /** Response of system B (e.g. the base model, or a reference output). */
  b: string;
}

export type OrderVerdict = 'first' | 'second' | 'tie' | 'invalid';
export type Winner = 'a' | 'b' | 'tie';

export interface PairVerdict {
  id?: string;
  /** Verdict with A shown first. */
  aFirst: OrderVerdict;
  /** Verdict with B shown first. */
  bFirst: OrderVerdict;
  winner: Winner;
  /** Both orders name the same winner (or both say tie). */
  agree: boolean;
}

export interface JudgeSummary {
  n: number;
  win: number;
  tie: number;
  loss: number;
  /** (win + tie / 2) / n, the usual pairwise win rate for A. */
  winRate: number;
  /** Fraction of pairs whose two orders agree. */
  agreement: number;
  /** Judge answers that could not be parsed (counted as ties in their order). */
  invalid: number;
  verdicts: PairVerdict[];
}

export const JUDGE_SYSTEM =
  'You compare two responses to the same instruction and decide which one is better.';

/** The judge prompt (our wording): instruction, two responses, and a strict last-line verdict. */
export function judgePrompt(
  item: { instruction: string; input?: string },
  first: string,
  second: string,
): string {
  const input = item.input ? `\n\nInput:\n${item.input}` : '';
  return (
    `Instruction:\n${item.instruction}${input}\n\n` +
    `[Response 1]\n${first}\n[End of Response 1]\n\n[Response 2]\n${second}\n[End of Response 2]\n\n` +
    'Which response carries out the instruction better? Judge correctness first, then helpfulness and clarity. ' +
    'Do not prefer a response for its length or for its position. Give one or two sentences of reasons, ' +
    'then write the verdict alone on the last line: 1, 2, or TIE.'
  );
}

/** Reads the verdict from the last non-empty line; anything else is 'invalid'. */
export function parseVerdict(text: string): OrderVerdict {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const last = (lines[lines.length - 1] ?? '')
    .replace(/^(verdict|answer)\s*:\s*/i, '')
    .replace(/[*.[\]()\s]/g, '')
    .toUpperCase();
  if (last === '1') return 'first';
  if (last === '2') return 'second';
  if (last === 'TIE') return 'tie';
  return 'invalid';
}

/** Combines the two orders: a winner needs both; disagreement is a tie. */
export function combine(
  aFirst: OrderVerdict,
  bFirst: OrderVerdict,
): { winner: Winner; agree: boolean } {
  const asWinner = (v: OrderVerdict, firstIs: Winner): Winner =>
    v === 'first' ? firstIs : v === 'second' ? (firstIs === 'a' ? 'b' : 'a') : 'tie';
  const w1 = asWinner(aFirst, 'a');
  const w2 = asWinner(bFirst, 'b');
  return { winner: w1 === w2 ? w1 : 'tie', agree: w1 === w2 };
}

export interface JudgeOptions {
  client: LlmClient;
  maxTokens?: number;
}

async function ask(client: LlmClient, prompt: string, maxTokens: number): Promise<string> {
  const r = await client.chat({
    messages: [
      { role: 'system', content: JUDGE_SYSTEM },
      { role: 'user', content: prompt },
    ],
    temperature: 0,
    max_tokens: maxTokens,
  });
  return r.choices[0]?.message.content ?? '';
}

/** Judges every pair in both orders. */
export async function judgePairwise(
  items: readonly JudgeItem[],
  opts: JudgeOptions,
): Promise<JudgeSummary> {
  const maxTokens = opts.maxTokens ?? 256;
  const verdicts = await Promise.all(
    items.map(async (it): Promise<PairVerdict> => {
      const [t1, t2] = await Promise.all([
        ask(opts.client, judgePrompt(it, it.a, it.b), maxTokens),
        ask(opts.client, judgePrompt(it, it.b, it.a), maxTokens),
      ]);
      const aFirst = parseVerdict(t1);
      const bFirst = parseVerdict(t2);
      return { ...(it.id ? { id: it.id } : {}), aFirst, bFirst, ...combine(aFirst, bFirst) };
    }),
  );
  const n = verdicts.length;
  const win = verdicts.filter((v) => v.winner === 'a').length;
  const loss = verdicts.filter((v) => v.winner === 'b').length;
  const tie = n - win - loss;
  const invalid = verdicts.reduce(
    (s, v) => s + Number(v.aFirst === 'invalid') + Number(v.bFirst === 'invalid'),
    0,
  );
  return {
    n,
    win,
    tie,
    loss,
    winRate: n === 0 ? Number.NaN : (win + tie / 2) / n,
    agreement: n === 0 ? Number.NaN : verdicts.filter((v) => v.agree).length / n,
    invalid,
    verdicts,
  };
}
