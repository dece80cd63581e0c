// Answer-option formatting for FLAN-style templates: a deterministic style ("OPTIONS:\n- a\n- b")
// and a randomised one that draws a start string, an item-marker style and an end string with a
// seeded Rng (FLAN's format_options_non_deterministic idea, with our own candidate lists). When
// the markers are letters or numbers and the answer is one of the options, the target becomes
// the marker, so the model learns to answer with it.
import type { Rng } from '../../util/rng.ts';

const START_STRINGS = [
  'OPTIONS:',
  'Options:',
  'Choices:',
  'Pick one:',
  'Choose from:',
  'Possible answers:',
  'Select one of:',
  'Candidates:',
  '',
];
const END_STRINGS = ['', '', '.'];

interface MarkerStyle {
  /** Marker for item i (0-based). */
  marker: (i: number) => string;
  /** Text before each item, after the marker. */
  sep: string;
  /** Whether the marker identifies the item (letters / numbers), so targets can use it. */
  distinct: boolean;
}

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const MARKER_STYLES: readonly MarkerStyle[] = [
  { marker: () => '-', sep: ' ', distinct: false },
  { marker: () => '*', sep: ' ', distinct: false },
  { marker: () => '+', sep: ' ', distinct: false },
  { marker: (i) => `(${LETTERS[i]})`, sep: ' ', distinct: true },
  { marker: (i) => `${LETTERS[i]}.`, sep: ' ', distinct: true },
  { marker: (i) => `${LETTERS[i]})`, sep: ' ', distinct: true },
  { marker: (i) => `(${LETTERS[i]!.toLowerCase()})`, sep: ' ', distinct: true },
  { marker: (i) => `${i + 1}.`, sep: ' ', distinct: true },
  { marker: (i) => `(${i + 1})`, sep: ' ', distinct: true },
  { marker: (i) => `[${i + 1}]`, sep: ' ', distinct: true },
];

export interface FormattedOptions {
  /** The options block to append to an input. */
  text: string;
  /** The target: the option itself, or its marker when markers are distinct. */
  target: string;
  /** The string each option is listed with (for scoring by log-likelihood). */
  markers: string[];
}

/** The deterministic FLAN style: "OPTIONS:" then one "- option" per line. */
export function formatOptions(options: readonly string[], answer: string): FormattedOptions {
  return {
    text: `OPTIONS:\n${options.map((o) => `- ${o}`).join('\n')}`,
    target: answer,
    markers: options.map(() => '-'),
  };
}

/**
 * A randomised options block. Distinct markers rewrite the target to the answer's marker with
 * trailing punctuation stripped, e.g. "(B)".
 * @throws RangeError with more than 26 options (markers run out).
 */
export function formatOptionsRandom(
  options: readonly string[],
  answer: string,
  rng: Rng,
): FormattedOptions {
  if (options.length > 26) throw new RangeError(`at most 26 options, got ${options.length}`);
  const start = rng.choice(START_STRINGS);
  const style = rng.choice(MARKER_STYLES);
  const end = rng.choice(END_STRINGS);
  const lines = options.map((o, i) => `${style.marker(i)}${style.sep}${o}`);
  const inline = rng.float() < 0.3;
  const body = inline ? lines.join(' ') : lines.join('\n');
  const text = `${start}${start === '' ? '' : inline ? ' ' : '\n'}${body}${end}`;
  const idx = options.indexOf(answer);
  const target =
    style.distinct && idx >= 0
      ? style.marker(idx).replace(/[.)\]]$/, (m) => (m === ')' || m === ']' ? m : ''))
      : answer;
  return { text, target, markers: options.map((_, i) => style.marker(i)) };
}
