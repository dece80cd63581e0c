import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  isPySpaceCodePoint,
  pyCapitalize,
  pyLen,
  pyLower,
  pyLstrip,
  pyRound,
  pyRstrip,
  pySplit,
  pyStrip,
  pyTitle,
  pyUpper,
} from '../../src/util/pystr.ts';
import { fixture } from '../helpers/shared.ts';

interface Expected {
  unicode: string;
  unassigned: [number, number][];
  isspace: number[];
  lower: Record<string, string>;
  upper: Record<string, string>;
  title: Record<string, string>;
  capitalize1: Record<string, string>;
  strings: {
    s: string;
    lower: string;
    upper: string;
    title: string;
    capitalize: string;
    len: number;
  }[];
  split: { s: string; split: string[]; split1: string[] }[];
  strip: { s: string; strip: string; lstrip: string; rstrip: string; stripx: string }[];
  round: [number, number, number][];
  round_int: [number, number][];
}
const want = JSON.parse(readFileSync(fixture('pystr', 'expected.json'), 'utf8')) as Expected;

/** Whether Python's Unicode database (older than Node's ICU) leaves this code point unassigned. */
function unassignedInPython(c: number): boolean {
  let lo = 0;
  let hi = want.unassigned.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [a, b] = want.unassigned[mid]!;
    if (c < a) hi = mid - 1;
    else if (c > b) lo = mid + 1;
    else return true;
  }
  return false;
}

/** Every code point except surrogates and those Python's Unicode database leaves unassigned. */
function* assigned(): Generator<number> {
  for (let c = 0; c < 0x110000; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    if (!unassignedInPython(c)) yield c;
  }
}

test('isspace matches Python on every code point (not JavaScript \\s)', () => {
  const ws = new Set(want.isspace);
  for (let c = 0; c < 0x110000; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    assert.equal(isPySpaceCodePoint(c), ws.has(c), `U+${c.toString(16)}`);
  }
  // The two directions in which \s and Python disagree.
  assert.ok(isPySpaceCodePoint(0x1c) && !/\s/.test('\u001c'));
  assert.ok(!isPySpaceCodePoint(0xfeff) && /\s/.test('\ufeff'));
});

test('lower/upper/title/capitalize of every assigned code point match Python', () => {
  const tables: [string, (s: string) => string, Record<string, string>][] = [
    ['lower', pyLower, want.lower],
    ['upper', pyUpper, want.upper],
    ['title', pyTitle, want.title],
    ['capitalize', pyCapitalize, want.capitalize1],
  ];
  let n = 0;
  const skew: string[] = [];
  for (const c of assigned()) {
    const ch = String.fromCodePoint(c);
    for (const [name, f, table] of tables) {
      const expected = table[c.toString(16)] ?? ch;
      const got = f(ch);
      if (got === expected) continue;
      // A mapping to a letter added after Python's Unicode version (e.g. U+019B gained an upper
      // case U+A7DC in Unicode 16): a Python on that version agrees with us.
      if ([...got].some((x) => unassignedInPython(x.codePointAt(0)!))) {
        skew.push(`${name}(U+${c.toString(16)})`);
        continue;
      }
      assert.fail(
        `${name}(U+${c.toString(16)}): ${JSON.stringify(got)} vs ${JSON.stringify(expected)}`,
      );
    }
    n++;
  }
  assert.ok(n > 280_000, `checked ${n} code points`);
  assert.ok(skew.length < 40, `Unicode version skew: ${skew.join(' ')}`);
});

test('string-level lower/upper/title/capitalize/len match Python (final sigma, digraphs)', () => {
  for (const w of want.strings) {
    assert.equal(pyLower(w.s), w.lower, `lower ${w.s}`);
    assert.equal(pyUpper(w.s), w.upper, `upper ${w.s}`);
    assert.equal(pyTitle(w.s), w.title, `title ${w.s}`);
    assert.equal(pyCapitalize(w.s), w.capitalize, `capitalize ${w.s}`);
    assert.equal(pyLen(w.s), w.len, `len ${w.s}`);
  }
});

test('split() and strip() use Python whitespace', () => {
  for (const w of want.split) {
    assert.deepEqual(pySplit(w.s), w.split, JSON.stringify(w.s));
    assert.deepEqual(pySplit(w.s, null, 1), w.split1, JSON.stringify(w.s));
  }
  for (const w of want.strip) {
    assert.equal(pyStrip(w.s), w.strip, JSON.stringify(w.s));
    assert.equal(pyLstrip(w.s), w.lstrip, JSON.stringify(w.s));
    assert.equal(pyRstrip(w.s), w.rstrip, JSON.stringify(w.s));
    assert.equal(pyStrip(w.s, 'x'), w.stripx, JSON.stringify(w.s));
  }
  assert.deepEqual(pySplit('a,b,,c', ',', 2), ['a', 'b', ',c']);
  assert.throws(() => pySplit('a', ''), RangeError);
});

test('round(x, n) matches Python: exact value, ties to even', () => {
  assert.ok(want.round.length > 100);
  for (const [x, n, r] of want.round) {
    assert.ok(Object.is(pyRound(x, n), r), `round(${x}, ${n}) = ${pyRound(x, n)}, Python ${r}`);
  }
  for (const [x, r] of want.round_int) assert.equal(pyRound(x) + 0, r, `round(${x})`);
  assert.equal(pyRound(2.675, 2), 2.67);
  assert.equal(pyRound(0.125, 2), 0.12);
  assert.throws(() => pyRound(1, 0.5), RangeError);
});
