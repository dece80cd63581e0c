// Answer extraction from generated text before scoring. 'bbh' follows BIG-Bench Hard's
// chain-of-thought convention in lm-evaluation-harness: the text after "the answer is" up to the
// final character; when it is absent the strict result is "[invalid]" and a sturdier fallback
// (case-insensitive "answer is/answer:", then the last non-empty line) is reported separately.

export type Extraction = 'none' | 'bbh' | { regex: string };

export interface Extracted {
  /** The strict answer, as the harness's filter would give it. */
  answer: string;
  /** A more forgiving reading, for a separately reported metric. */
  fallback: string;
  /** Which rule produced `answer`. */
  rule: 'none' | 'strict' | 'regex' | 'invalid';
}

const BBH = /(?<=the answer is )(.*)(?=.)/;

function lenient(text: string): string {
  const m = /answer(?:\s+is|:)\s*:?\s*(.+)/i.exec(text);
  if (m) return m[1]!.trim().replace(/[.\s]+$/, '');
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return (lines[lines.length - 1] ?? '').replace(/[.\s]+$/, '');
}

export function extractAnswer(text: string, how: Extraction): Extracted {
  if (how === 'none') return { answer: text, fallback: text.trim(), rule: 'none' };
  if (how === 'bbh') {
    const m = BBH.exec(text);
    if (m) return { answer: m[1]!, fallback: m[1]!, rule: 'strict' };
    return { answer: '[invalid]', fallback: lenient(text), rule: 'invalid' };
  }
  const m = new RegExp(how.regex).exec(text);
  if (m) return { answer: m[1] ?? m[0], fallback: m[1] ?? m[0], rule: 'regex' };
  return { answer: '[invalid]', fallback: lenient(text), rule: 'invalid' };
}
