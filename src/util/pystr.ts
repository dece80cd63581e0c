// CPython's str semantics for the metrics and template filters that mirror Python code: the
// isspace() set (split/strip), lower/upper/title/capitalize with full case mappings, final sigma
// and title case, len() in code points, and round() on floats (correctly rounded, half to even).
// Checked over every code point against test/fixtures/pystr (scripts/fixtures/pystr_expected.py).

/**
 * Python's str.isspace() set: bidirectional class WS, B or S, or category Zs
 * (Objects/unicodectype.c). It differs from JavaScript's \s both ways: U+001C..U+001F and U+0085
 * are Python whitespace and not \s; U+FEFF is \s and not Python whitespace.
 */
const PY_SPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
  0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f,
  0x205f, 0x3000,
]);

/** Whether Python's str.isspace() holds for this one code point. */
export function isPySpaceCodePoint(cp: number): boolean {
  return PY_SPACE.has(cp);
}

/** Python's str.isspace(): non-empty and every code point is whitespace. */
export function pyIsSpace(s: string): boolean {
  if (s === '') return false;
  for (const ch of s) if (!PY_SPACE.has(ch.codePointAt(0)!)) return false;
  return true;
}

/** Python's len(str): code points, not UTF-16 units. */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * Python's str.split(sep=None, maxsplit=-1). Without sep: runs of Python whitespace separate
 * words and leading/trailing whitespace yields no empty strings. With sep: exact substring split.
 */
export function pySplit(s: string, sep?: string | null, maxsplit = -1): string[] {
  if (sep !== undefined && sep !== null) {
    if (sep === '') throw new RangeError('empty separator');
    const parts = s.split(sep);
    if (maxsplit < 0 || parts.length <= maxsplit + 1) return parts;
    return [...parts.slice(0, maxsplit), parts.slice(maxsplit).join(sep)];
  }
  const out: string[] = [];
  let i = 0;
  const n = s.length;
  const spaceAt = (k: number) => PY_SPACE.has(s.charCodeAt(k));
  while (i < n) {
    while (i < n && spaceAt(i)) i++;
    if (i >= n) break;
    if (maxsplit >= 0 && out.length === maxsplit) {
      // Python keeps the remainder as is, trailing whitespace included.
      out.push(s.slice(i));
      break;
    }
    let j = i;
    while (j < n && !spaceAt(j)) j++;
    out.push(s.slice(i, j));
    i = j;
  }
  return out;
}

/** ' '.join(s.split()): the white_space_fix of SQuAD / Super-NI answer normalisers. */
export function pyCollapseSpace(s: string): string {
  return pySplit(s).join(' ');
}

/**
 * Python's strip/lstrip/rstrip. Without chars: Python whitespace; with chars: any of its code
 * points. (All whitespace is in the BMP, so UTF-16 units are safe for the default.)
 */
export function pyStrip(
  s: string,
  chars?: string | null,
  side: 'both' | 'left' | 'right' = 'both',
) {
  const cps = [...s];
  const set = chars === undefined || chars === null ? null : new Set(chars);
  const drop = (ch: string) => (set ? set.has(ch) : PY_SPACE.has(ch.codePointAt(0)!));
  let i = 0;
  let j = cps.length;
  if (side !== 'right') while (i < j && drop(cps[i]!)) i++;
  if (side !== 'left') while (j > i && drop(cps[j - 1]!)) j--;
  return cps.slice(i, j).join('');
}

export const pyLstrip = (s: string, chars?: string | null) => pyStrip(s, chars, 'left');
export const pyRstrip = (s: string, chars?: string | null) => pyStrip(s, chars, 'right');

const CASED = /^\p{Cased}$/u;
const CASE_IGNORABLE = /^\p{Case_Ignorable}$/u;
const isCased = (ch: string) => CASED.test(ch);
const isCaseIgnorable = (ch: string) => CASE_IGNORABLE.test(ch);

/**
 * Full title-case mappings that differ from the full upper-case mapping (UnicodeData.txt field 14
 * and SpecialCasing.txt): digraphs, ligatures, ß, Greek with ypogegrammeni, and Georgian
 * Mkhedruli (title case is itself since Unicode 11). Generated from CPython's str.title() on
 * every code point; everything else title-cases as it upper-cases.
 */
const TITLE_EXCEPTIONS: ReadonlyMap<string, string> = new Map(
  'df=53,73;1c4=1c5;1c5=1c5;1c6=1c5;1c7=1c8;1c8=1c8;1c9=1c8;1ca=1cb;1cb=1cb;1cc=1cb;1f1=1f2;1f2=1f2;1f3=1f2;587=535,582;10d0=10d0;10d1=10d1;10d2=10d2;10d3=10d3;10d4=10d4;10d5=10d5;10d6=10d6;10d7=10d7;10d8=10d8;10d9=10d9;10da=10da;10db=10db;10dc=10dc;10dd=10dd;10de=10de;10df=10df;10e0=10e0;10e1=10e1;10e2=10e2;10e3=10e3;10e4=10e4;10e5=10e5;10e6=10e6;10e7=10e7;10e8=10e8;10e9=10e9;10ea=10ea;10eb=10eb;10ec=10ec;10ed=10ed;10ee=10ee;10ef=10ef;10f0=10f0;10f1=10f1;10f2=10f2;10f3=10f3;10f4=10f4;10f5=10f5;10f6=10f6;10f7=10f7;10f8=10f8;10f9=10f9;10fa=10fa;10fd=10fd;10fe=10fe;10ff=10ff;1f80=1f88;1f81=1f89;1f82=1f8a;1f83=1f8b;1f84=1f8c;1f85=1f8d;1f86=1f8e;1f87=1f8f;1f88=1f88;1f89=1f89;1f8a=1f8a;1f8b=1f8b;1f8c=1f8c;1f8d=1f8d;1f8e=1f8e;1f8f=1f8f;1f90=1f98;1f91=1f99;1f92=1f9a;1f93=1f9b;1f94=1f9c;1f95=1f9d;1f96=1f9e;1f97=1f9f;1f98=1f98;1f99=1f99;1f9a=1f9a;1f9b=1f9b;1f9c=1f9c;1f9d=1f9d;1f9e=1f9e;1f9f=1f9f;1fa0=1fa8;1fa1=1fa9;1fa2=1faa;1fa3=1fab;1fa4=1fac;1fa5=1fad;1fa6=1fae;1fa7=1faf;1fa8=1fa8;1fa9=1fa9;1faa=1faa;1fab=1fab;1fac=1fac;1fad=1fad;1fae=1fae;1faf=1faf;1fb2=1fba,345;1fb3=1fbc;1fb4=386,345;1fb7=391,342,345;1fbc=1fbc;1fc2=1fca,345;1fc3=1fcc;1fc4=389,345;1fc7=397,342,345;1fcc=1fcc;1ff2=1ffa,345;1ff3=1ffc;1ff4=38f,345;1ff7=3a9,342,345;1ffc=1ffc;fb00=46,66;fb01=46,69;fb02=46,6c;fb03=46,66,69;fb04=46,66,6c;fb05=53,74;fb06=53,74;fb13=544,576;fb14=544,565;fb15=544,56b;fb16=54e,576;fb17=544,56d'
    .split(';')
    .map((e) => {
      const [k, v] = e.split('=') as [string, string];
      return [
        String.fromCodePoint(Number.parseInt(k, 16)),
        String.fromCodePoint(...v.split(',').map((h) => Number.parseInt(h, 16))),
      ];
    }),
);

function titleFull(ch: string): string {
  return TITLE_EXCEPTIONS.get(ch) ?? ch.toUpperCase();
}

/**
 * Lower-cases cps[i] as CPython's lower_ucs4 does: full mapping, and capital sigma becomes final
 * sigma when preceded by a cased letter and not followed by one, skipping case-ignorable code
 * points both ways (Unicode 3.13 Final_Sigma; Objects/unicodeobject.c handle_capital_sigma).
 */
function lowerAt(cps: readonly string[], i: number): string {
  const ch = cps[i]!;
  if (ch !== '\u03a3') return ch.toLowerCase();
  let j = i - 1;
  while (j >= 0 && isCaseIgnorable(cps[j]!)) j--;
  let final = j >= 0 && isCased(cps[j]!);
  if (final) {
    let k = i + 1;
    while (k < cps.length && isCaseIgnorable(cps[k]!)) k++;
    final = k === cps.length || !isCased(cps[k]!);
  }
  return final ? '\u03c2' : '\u03c3';
}

/** Python's str.lower() (full mappings, final sigma). */
export function pyLower(s: string): string {
  const cps = [...s];
  let out = '';
  for (let i = 0; i < cps.length; i++) out += lowerAt(cps, i);
  return out;
}

/** Python's str.upper() (full mappings: 'ß' → 'SS'). */
export function pyUpper(s: string): string {
  return s.toUpperCase();
}

/** Python ≥ 3.8 str.capitalize(): first code point title-cased, the rest lower-cased. */
export function pyCapitalize(s: string): string {
  const cps = [...s];
  if (cps.length === 0) return '';
  let out = titleFull(cps[0]!);
  for (let i = 1; i < cps.length; i++) out += lowerAt(cps, i);
  return out;
}

/**
 * Python's str.title(): a code point after a cased one is lower-cased, any other is title-cased
 * (so "they're" → "They'Re", as Python does; Objects/unicodeobject.c do_title).
 */
export function pyTitle(s: string): string {
  const cps = [...s];
  let out = '';
  let prevCased = false;
  for (let i = 0; i < cps.length; i++) {
    const ch = cps[i]!;
    out += prevCased ? lowerAt(cps, i) : titleFull(ch);
    prevCased = isCased(ch);
  }
  return out;
}

/** Exact value of a finite double as sign, integer mantissa and binary exponent. */
function decompose(x: number): { neg: boolean; m: bigint; e: number } {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, x);
  const hi = dv.getUint32(0);
  const lo = dv.getUint32(4);
  const neg = hi >>> 31 === 1;
  const bexp = (hi >>> 20) & 0x7ff;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let e: number;
  if (bexp === 0) e = -1074;
  else {
    m |= 1n << 52n;
    e = bexp - 1075;
  }
  return { neg, m, e };
}

/**
 * Python's round(x, ndigits) for a float: the exact binary value rounded to ndigits decimals, ties
 * to even, then read back as the nearest double (Objects/floatobject.c double_round uses
 * _Py_dg_dtoa mode 3). So round(2.675, 2) is 2.67 (2.675 is stored below the tie) and
 * round(0.125, 2) is 0.12 (an exact tie, to even). Without ndigits, Python returns an int; the
 * value is the same number here.
 */
export function pyRound(x: number, ndigits = 0): number {
  if (!Number.isFinite(x) || x === 0) return x;
  if (!Number.isInteger(ndigits))
    throw new RangeError(`ndigits must be an integer, got ${ndigits}`);
  const { neg, m, e } = decompose(x);
  // x·10^ndigits = num / den exactly.
  let num = m;
  let den = 1n;
  if (e >= 0) num <<= BigInt(e);
  else den <<= BigInt(-e);
  if (ndigits >= 0) num *= 10n ** BigInt(ndigits);
  else den *= 10n ** BigInt(-ndigits);
  let q = num / den;
  const r2 = (num - q * den) * 2n;
  if (r2 > den || (r2 === den && q % 2n === 1n)) q += 1n;
  const mag = q === 0n ? 0 : Number(`${q}e${-ndigits}`);
  return neg ? -mag : mag;
}
