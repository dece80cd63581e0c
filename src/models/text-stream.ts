// Generated tokens → text, incrementally: each new token is decoded in a two-token window
// (as text-generation-inference does), so a character split across byte-level tokens is
// emitted only once complete; stop strings are found in the decoded text (also when split
// across tokens), the text is cut before the first one, and a streamed delta never shows a
// prefix that might still grow into a stop string. Sampling and batching are elsewhere.
import type { Tokenizer } from './tokenizer.ts';

const REPLACEMENT = '\ufffd';

/**
 * Length of the prefix of `text` that is safe to stream: no trailing incomplete character
 * (U+FFFD) and no suffix that is a proper prefix of a stop string.
 */
export function stableLength(text: string, stops: readonly string[]): number {
  let end = text.length;
  while (end > 0 && text[end - 1] === REPLACEMENT) end--;
  let hold = 0;
  for (const s of stops)
    for (let k = Math.min(s.length - 1, end); k > hold; k--)
      if (text.startsWith(s.slice(0, k), end - k)) {
        hold = k;
        break;
      }
  return end - hold;
}

/** Options of a TextStream. */
export interface TextStreamOptions {
  /** Stop strings: the text ends before the first occurrence of any. */
  stop?: readonly string[];
  /** Leave special tokens (e.g. <|im_start|>) out of the text. @default true */
  skipSpecialTokens?: boolean;
}

/** Incremental detokenizer with stop strings, for one generated sequence. */
export class TextStream {
  readonly stops: readonly string[];
  /** Text so far (cut before a stop string once one appeared). */
  text = '';
  /** True once a stop string appeared. */
  stopped = false;
  #tok: Tokenizer | null;
  #skip: boolean;
  #tokens: number[] = [];
  #prefix = 0;
  #read = 0;
  #emitted = 0;
  #searched = 0;

  constructor(tokenizer: Tokenizer | null, opts: TextStreamOptions = {}) {
    this.#tok = tokenizer;
    this.stops = (opts.stop ?? []).filter((s) => s.length > 0);
    this.#skip = opts.skipSpecialTokens ?? true;
  }

  #decode(ids: readonly number[]): string {
    return this.#tok!.decode(ids, { skipSpecialTokens: this.#skip });
  }

  /** The text a window adds after its first token(s), or null while a character is incomplete. */
  #window(final: boolean): string | null {
    const prev = this.#decode(this.#tokens.slice(this.#prefix, this.#read));
    const cur = this.#decode(this.#tokens.slice(this.#prefix));
    if (!final && (cur.length <= prev.length || cur.endsWith(REPLACEMENT))) return null;
    return cur.startsWith(prev)
      ? cur.slice(prev.length)
      : cur.slice(Math.min(prev.length, cur.length));
  }

  /** Add a token; returns the text that became safe to show (possibly ''). */
  push(token: number): string {
    if (this.stopped || !this.#tok) return '';
    this.#tokens.push(token);
    const added = this.#window(false);
    if (added !== null) {
      this.text += added;
      this.#prefix = this.#read;
      this.#read = this.#tokens.length;
      this.#checkStops();
    }
    return this.#take(this.stopped ? this.text.length : stableLength(this.text, this.stops));
  }

  /** End of generation: the rest of the text (an incomplete character is shown as U+FFFD). */
  finish(): string {
    if (!this.stopped && this.#tok && this.#read < this.#tokens.length) {
      this.text += this.#window(true) ?? '';
      this.#read = this.#tokens.length;
      this.#checkStops();
    }
    return this.#take(this.text.length);
  }

  #take(upTo: number): string {
    if (upTo <= this.#emitted) return '';
    const d = this.text.slice(this.#emitted, upTo);
    this.#emitted = upTo;
    return d;
  }

  #checkStops(): void {
    let cut = -1;
    for (const s of this.stops) {
      const i = this.text.indexOf(s, Math.max(0, this.#searched - s.length + 1));
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    this.#searched = this.text.length;
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      this.stopped = true;
    }
  }
}
