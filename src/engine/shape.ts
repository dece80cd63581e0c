// Shapes with static (number) or symbolic (string) dims, and the arithmetic shape inference
// needs: products of symbols ('B*T'), broadcasting, axis normalisation. A symbolic dim is a
// monomial: an integer coefficient times named symbols, written canonically as '2*B*T'.
import { ShapeError } from '../util/errors.ts';

/** One dimension: a size, or a symbolic expression such as 'B', 'T' or 'B*T'. */
export type Dim = number | string;
/** A tensor shape. */
export type Shape = readonly Dim[];

interface Monomial {
  coef: number;
  syms: string[]; // sorted, with repeats
}

/** Split `s` at `ch` where parentheses are balanced. */
function splitTop(s: string, ch: '+' | '*'): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ch && depth === 0) {
      parts.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(s.slice(start).trim());
  return parts;
}

function toMono(d: Dim): Monomial {
  if (typeof d === 'number') return { coef: d, syms: [] };
  // A sum such as 'P+1' is one opaque factor, written '(P+1)' inside products.
  if (splitTop(d, '+').length > 1) return { coef: 1, syms: [`(${canonSum(d)})`] };
  let coef = 1;
  const syms: string[] = [];
  for (const p of splitTop(d, '*')) {
    if (/^\d+$/.test(p)) coef *= Number(p);
    else if (p.startsWith('(') && p.endsWith(')') && splitTop(p.slice(1, -1), '+').length > 1)
      syms.push(`(${canonSum(p.slice(1, -1))})`);
    else if (p !== '') syms.push(p);
  }
  syms.sort();
  return { coef, syms };
}

function canonSum(d: string): string {
  return String(dimAddAll(splitTop(d, '+').map((t) => (/^\d+$/.test(t) ? Number(t) : t))));
}

function dimAddAll(terms: readonly Dim[]): Dim {
  let c = 0;
  const syms: string[] = [];
  for (const t of terms) {
    if (typeof t === 'number') c += t;
    else
      for (const u of splitTop(t, '+')) {
        if (/^\d+$/.test(u)) c += Number(u);
        else syms.push(String(fromMono(toMono(u))));
      }
  }
  if (syms.length === 0) return c;
  syms.sort();
  if (c !== 0) syms.push(String(c));
  return syms.join('+');
}

/** Sum of two dims ('P' + 1 → 'P+1'); used by concat along a symbolic axis. */
export function dimAdd(a: Dim, b: Dim): Dim {
  return dimAddAll([a, b]);
}

/** The top-level terms of a sum dim ('P+1' → ['P', 1]); a non-sum is one term. */
export function dimTerms(d: Dim): Dim[] {
  if (typeof d === 'number') return [d];
  return splitTop(d, '+').map((t) => (/^\d+$/.test(t) ? Number(t) : t));
}

function fromMono(m: Monomial): Dim {
  if (m.syms.length === 0) return m.coef;
  const s = m.syms.join('*');
  return m.coef === 1 ? s : `${m.coef}*${s}`;
}

/** Canonical form of a dim ('T*B' → 'B*T', '1*B' → 'B'). */
export function canonDim(d: Dim): Dim {
  if (typeof d === 'number') return d;
  return splitTop(d, '+').length > 1 ? canonSum(d) : fromMono(toMono(d));
}

/** Product of two dims. */
export function dimMul(a: Dim, b: Dim): Dim {
  const x = toMono(a);
  const y = toMono(b);
  return fromMono({ coef: x.coef * y.coef, syms: [...x.syms, ...y.syms].sort() });
}

/** Exact quotient a / b, or undefined when b does not divide a symbolically. */
export function dimDiv(a: Dim, b: Dim): Dim | undefined {
  const x = toMono(a);
  const y = toMono(b);
  if (y.coef === 0 || x.coef % y.coef !== 0) return undefined;
  const rest = [...x.syms];
  for (const s of y.syms) {
    const i = rest.indexOf(s);
    if (i < 0) return undefined;
    rest.splice(i, 1);
  }
  return fromMono({ coef: x.coef / y.coef, syms: rest });
}

/** Symbolic equality of two dims. */
export function dimEq(a: Dim, b: Dim): boolean {
  return canonDim(a) === canonDim(b);
}

/** Element count (symbolic when any dim is). */
export function numel(s: Shape): Dim {
  let n: Dim = 1;
  for (const d of s) n = dimMul(n, d);
  return n;
}

/** True when every dim is a number. */
export function isStatic(s: Shape): s is readonly number[] {
  return s.every((d) => typeof d === 'number');
}

/** The symbols a dim mentions. */
export function dimSymbols(d: Dim): string[] {
  return toMono(d).syms;
}

/** Coefficient of a dim ('2*B' → 2, 'B' → 1, 7 → 7). */
export function dimCoef(d: Dim): number {
  return toMono(d).coef;
}

/** Human-readable shape, e.g. [B,T,64]. */
export function fmtShape(s: Shape): string {
  return `[${s.join(',')}]`;
}

/** Shapes equal dim by dim (symbolically). */
export function shapeEq(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => dimEq(d, b[i] as Dim));
}

/** Numpy broadcasting of two shapes; throws ShapeError naming `op` and both shapes. */
export function broadcast(op: string, a: Shape, b: Shape): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : (a[i - (n - a.length)] as Dim);
    const db = i < n - b.length ? 1 : (b[i - (n - b.length)] as Dim);
    if (dimEq(da, db) || db === 1) out.push(canonDim(da));
    else if (da === 1) out.push(canonDim(db));
    else
      throw new ShapeError(op, `cannot broadcast ${fmtShape(a)} with ${fmtShape(b)}`, {
        hint: 'dims must be equal or 1 (symbolic dims must have the same name)',
      });
  }
  return out;
}

/** Normalise a possibly negative axis for a tensor of rank `rank`. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank)
    throw new ShapeError(op, `axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Resolve a static size, or throw a ShapeError explaining that `what` must be static. */
export function staticDim(op: string, d: Dim, what: string): number {
  if (typeof d !== 'number')
    throw new ShapeError(op, `${what} must be static, got symbolic dim '${d}'`, {
      hint: 'build the graph for a fixed shape bucket',
    });
  return d;
}
