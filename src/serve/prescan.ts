// A scan of a request body's JSON text that counts the strings of its top-level `prompt` array
// without parsing the body, so that a request for more prompts than the server runs at once is
// refused for the cost of reading its bytes. JSON.parse of 300,000 empty prompts builds the
// whole array first and costs more than the scan. The scan is conservative: anything it does
// not expect before it has its count (an escaped key, a prompt that is not an array of
// strings, bad JSON) makes it answer null and the body goes through JSON.parse and validation
// as usual. A body that is refused for its prompt count is not checked past the count (bad
// JSON further on gets the count's refusal, also a 400).

enum C {
  Quote = 0x22,
  Backslash = 0x5c,
  Comma = 0x2c,
  Colon = 0x3a,
  OpenBrace = 0x7b,
  CloseBrace = 0x7d,
  OpenBracket = 0x5b,
  CloseBracket = 0x5d,
}

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Index after the string starting at `i` (a quote), or -1 when it does not end. */
function skipString(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === C.Backslash) j++;
    else if (c === C.Quote) return j + 1;
  }
  return -1;
}

/** Index after the value starting at `i`, or -1 when unsure. */
function skipValue(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === C.Quote) return skipString(s, i);
  if (c === C.OpenBrace || c === C.OpenBracket) {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const d = s.charCodeAt(j);
      if (d === C.Quote) {
        j = skipString(s, j) - 1;
        if (j < 0) return -1;
      } else if (d === C.OpenBrace || d === C.OpenBracket) depth++;
      else if (d === C.CloseBrace || d === C.CloseBracket) {
        if (--depth === 0) return j + 1;
      }
    }
    return -1;
  }
  // Number, true, false, null: up to the next delimiter.
  let j = i;
  while (j < s.length) {
    const d = s.charCodeAt(j);
    if (d === C.Comma || d === C.CloseBrace || d === C.CloseBracket || isSpace(d)) break;
    j++;
  }
  return j > i ? j : -1;
}

function skipSpace(s: string, i: number): number {
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  return i;
}

/**
 * The number of strings in the body's top-level `prompt` array, counted up to `stopAfter + 1`
 * (past that the exact count does not matter), or null when the body has no such array or the
 * scan is unsure of it.
 */
export function countPrompts(text: string, stopAfter: number): number | null {
  let i = skipSpace(text, 0);
  if (text.charCodeAt(i) !== C.OpenBrace) return null;
  i = skipSpace(text, i + 1);
  while (i < text.length && text.charCodeAt(i) === C.Quote) {
    const end = skipString(text, i);
    if (end < 0) return null;
    const key = text.slice(i + 1, end - 1);
    if (key.includes('\\')) return null;
    i = skipSpace(text, end);
    if (text.charCodeAt(i) !== C.Colon) return null;
    i = skipSpace(text, i + 1);
    if (key === 'prompt') {
      if (text.charCodeAt(i) !== C.OpenBracket) return null;
      let count = 0;
      i = skipSpace(text, i + 1);
      if (text.charCodeAt(i) === C.CloseBracket) return 0;
      for (;;) {
        if (text.charCodeAt(i) !== C.Quote) return null;
        i = skipString(text, i);
        if (i < 0) return null;
        if (++count > stopAfter) return count;
        i = skipSpace(text, i);
        const d = text.charCodeAt(i);
        if (d === C.CloseBracket) return count;
        if (d !== C.Comma) return null;
        i = skipSpace(text, i + 1);
      }
    }
    i = skipValue(text, i);
    if (i < 0) return null;
    i = skipSpace(text, i);
    if (text.charCodeAt(i) !== C.Comma) return null;
    i = skipSpace(text, i + 1);
  }
  return null;
}
