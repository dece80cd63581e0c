// A Jinja environment that renders like Python's Jinja2, built on @huggingface/jinja's parser and
// interpreter. It adds what PromptSource templates rely on and the library lacks: Python str()
// and repr() of values, Python string/dict methods, the `choice` / `random` / `most_frequent` /
// `truncate` / `string` filters with a seeded Python-compatible RNG, `zip`, and Jinja2's
// default whitespace rules. HF chat templates use the same class with trim/lstrip blocks on.
import { Environment, Interpreter, parse, tokenize } from '@huggingface/jinja';
import { PyRandom } from '../../util/pyrandom.ts';
import {
  pyCapitalize,
  pyLen,
  pyLower,
  pyRound,
  pySplit as pySplitWs,
  pyStrip,
  pyTitle,
  pyUpper,
} from '../../util/pystr.ts';

// The library exports only Environment and Interpreter; its value classes are reached through
// the values it creates. RV is the structural type every runtime value satisfies.
export interface RV {
  type: string;
  value: unknown;
  __bool__(): { value: boolean };
  readonly builtins: Map<string, RV>;
}
type Ctor = new (value?: unknown) => RV;
type Fn = (args: RV[], env: unknown) => RV;

let probeCount = 0;
function ctorOf(v: unknown): Ctor {
  const probe = new Environment();
  return (probe.set(`__probe${probeCount++}`, v) as unknown as { constructor: Ctor }).constructor;
}
const StringV = ctorOf('s');
const IntegerV = ctorOf(1);
const FloatV = ctorOf(1.5);
const BooleanV = ctorOf(true);
const ArrayV = ctorOf([]);
const ObjectV = ctorOf({});
const NullV = ctorOf(null);
const UndefinedV = ctorOf(undefined);
const FunctionV = ctorOf(() => null);

const str = (s: string): RV => new StringV(s);
const int = (n: number): RV => new IntegerV(n);
const bool = (b: boolean): RV => new BooleanV(b);
const arr = (xs: RV[]): RV => new ArrayV(xs);
const fn = (f: Fn): RV => new FunctionV(f);
const undef = (): RV => new UndefinedV();
const none = (): RV => new NullV();

const isArray = (v: RV): boolean => v.type === 'ArrayValue' || v.type === 'TupleValue';
const isMapping = (v: RV): boolean =>
  v.type === 'ObjectValue' || v.type === 'KeywordArgumentsValue';
const isKwargs = (v: RV | undefined): boolean => v?.type === 'KeywordArgumentsValue';

/** Error raised while rendering; the template layer adds file and template names. */
export class JinjaRenderError extends Error {}

/**
 * Budgets of one render, so that a template (a model's chat template comes from its download)
 * cannot exhaust memory or block the event loop. The defaults are far above what real templates
 * need (a Llama-3 or Qwen3 chat template renders a 100-turn conversation in a few thousand steps).
 */
export interface JinjaLimits {
  /** Longest string any expression, block or the output may be, in UTF-16 units. */
  maxChars: number;
  /** Longest list an expression may build (range(), list + list, list * n). */
  maxItems: number;
  /** Loop iterations in one render, summed over all loops (nested loops multiply). */
  maxLoopIterations: number;
  /** Interpreter steps (expressions and statements evaluated) in one render. */
  maxSteps: number;
  /** Wall-clock time of one render, in milliseconds (checked every 64 steps). */
  timeoutMs: number;
}

export const DEFAULT_JINJA_LIMITS: Readonly<JinjaLimits> = Object.freeze({
  maxChars: 4_000_000,
  maxItems: 1_000_000,
  maxLoopIterations: 100_000,
  maxSteps: 20_000_000,
  timeoutMs: 2000,
});

/** A render went over one of its JinjaLimits; names the template and the limit. */
export class JinjaLimitError extends JinjaRenderError {
  constructor(
    readonly template: string,
    readonly limit: keyof JinjaLimits,
    readonly max: number,
    what: string,
  ) {
    super(`template ${template} exceeded ${limit} (${max}): ${what}`);
    this.name = 'JinjaLimitError';
  }
}

/** The live budget of one render, shared by the interpreter and the helpers it calls. */
class Budget {
  steps = 0;
  iterations = 0;
  readonly deadline: number;
  constructor(
    readonly limits: JinjaLimits,
    readonly template: string,
  ) {
    this.deadline = performance.now() + limits.timeoutMs;
  }
  fail(limit: keyof JinjaLimits, what: string): never {
    throw new JinjaLimitError(this.template, limit, this.limits[limit], what);
  }
  /** Throws before a string of `n` characters is built. */
  chars(n: number, what: string): void {
    if (n > this.limits.maxChars) this.fail('maxChars', `${what} of ${n} characters`);
  }
  items(n: number, what: string): void {
    if (n > this.limits.maxItems) this.fail('maxItems', `${what} of ${n} items`);
  }
  step(): void {
    if (++this.steps > this.limits.maxSteps) this.fail('maxSteps', `${this.steps} steps`);
    if ((this.steps & 63) === 0 && performance.now() > this.deadline)
      this.fail('timeoutMs', `rendering took over ${this.limits.timeoutMs} ms`);
  }
  /** For long loops inside one step (range, unique): checks the clock every 4096 items. */
  poll(i: number): void {
    if ((i & 4095) === 4095 && performance.now() > this.deadline)
      this.fail('timeoutMs', `rendering took over ${this.limits.timeoutMs} ms`);
  }
  iteration(): void {
    if (++this.iterations > this.limits.maxLoopIterations)
      this.fail('maxLoopIterations', `${this.iterations} loop iterations`);
  }
}

/** Length of parts.join(sep), computed without building it. */
function joinedLength(parts: readonly string[], sep: number): number {
  let n = parts.length > 0 ? (parts.length - 1) * sep : 0;
  for (const p of parts) n += p.length;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Python str() / repr()

/** Python's repr() of a float: shortest round-trip digits, scientific outside [1e-4, 1e16). */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const abs = Math.abs(x);
  if (abs >= 1e16 || abs < 1e-4) {
    const [mant, exp] = x.toExponential().split('e') as [string, string];
    const e = Number(exp);
    return `${mant}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  const s = String(x);
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
}

/** Python's repr() of a str. */
export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c >= 0x80 && c < 0xa0) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c === 0xad) out += '\\xad';
    else if ((c >= 0x2028 && c <= 0x2029) || (c >= 0xd800 && c <= 0xdfff))
      out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out + quote;
}

export function pyRepr(v: RV): string {
  switch (v.type) {
    case 'StringValue':
      return pyStrRepr(v.value as string);
    case 'ArrayValue':
      return `[${(v.value as RV[]).map(pyRepr).join(', ')}]`;
    case 'TupleValue': {
      const xs = v.value as RV[];
      return xs.length === 1 ? `(${pyRepr(xs[0]!)},)` : `(${xs.map(pyRepr).join(', ')})`;
    }
    case 'ObjectValue':
    case 'KeywordArgumentsValue':
      return `{${[...(v.value as Map<string, RV>).entries()].map(([k, x]) => `${pyStrRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
    case 'NamespaceValue':
      return `<Namespace ${pyRepr(new ObjectV(v.value))}>`;
    default:
      return pyStr(v);
  }
}

/** Python's str() of a runtime value, with Jinja2's Undefined printing as ''. */
export function pyStr(v: RV): string {
  switch (v.type) {
    case 'StringValue':
      return v.value as string;
    case 'IntegerValue':
      return String(v.value);
    case 'FloatValue':
      return pyFloatRepr(v.value as number);
    case 'BooleanValue':
      return v.value ? 'True' : 'False';
    case 'NullValue':
      return 'None';
    case 'UndefinedValue':
      return '';
    case 'FunctionValue':
      return '<function>';
    default:
      return pyRepr(v);
  }
}

/** Python equality between runtime values (True == 1, lists and dicts compared deeply). */
export function pyEquals(a: RV, b: RV): boolean {
  const num = (v: RV): number | undefined =>
    v.type === 'IntegerValue' || v.type === 'FloatValue'
      ? (v.value as number)
      : v.type === 'BooleanValue'
        ? Number(v.value)
        : undefined;
  const na = num(a);
  const nb = num(b);
  if (na !== undefined && nb !== undefined) return na === nb;
  if (isArray(a) && isArray(b)) {
    const xs = a.value as RV[];
    const ys = b.value as RV[];
    return a.type === b.type && xs.length === ys.length && xs.every((x, i) => pyEquals(x, ys[i]!));
  }
  if (isMapping(a) && isMapping(b)) {
    const xs = a.value as Map<string, RV>;
    const ys = b.value as Map<string, RV>;
    if (xs.size !== ys.size) return false;
    for (const [k, x] of xs) if (!ys.has(k) || !pyEquals(x, ys.get(k)!)) return false;
    return true;
  }
  if (a.type === 'UndefinedValue' || b.type === 'UndefinedValue') return a.type === b.type;
  return a.type === b.type && a.value === b.value;
}

// ---------------------------------------------------------------------------------------------
// Python string and dict methods

function stripChars(s: string, chars: RV | undefined, left: boolean, right: boolean): string {
  const set = chars === undefined || chars.type === 'NullValue' ? null : (chars.value as string);
  return pyStrip(s, set, left && right ? 'both' : left ? 'left' : 'right');
}

function pySplit(s: string, sep: RV | undefined, maxsplit: number, budget: Budget): string[] {
  if (sep === undefined || sep.type === 'NullValue') {
    const out = pySplitWs(s, null, maxsplit);
    budget.items(out.length, 'str.split() result');
    return out;
  }
  const d = sep.value as string;
  if (d === '') throw new JinjaRenderError('ValueError: empty separator');
  let count = 1;
  for (
    let at = s.indexOf(d);
    at >= 0 && (maxsplit < 0 || count <= maxsplit);
    at = s.indexOf(d, at + d.length)
  )
    budget.items(++count, 'str.split() result');
  const parts = s.split(d);
  if (maxsplit >= 0 && parts.length > maxsplit + 1) {
    return [...parts.slice(0, maxsplit), parts.slice(maxsplit).join(d)];
  }
  return parts;
}

function positional(args: RV[]): RV[] {
  return isKwargs(args[args.length - 1]) ? args.slice(0, -1) : args;
}

function stringMethod(s: string, name: string, budget: Budget): RV | undefined {
  const m = (f: (a: RV[]) => RV): RV => fn((args) => f(positional(args)));
  switch (name) {
    case 'strip':
      return m((a) => str(stripChars(s, a[0], true, true)));
    case 'lstrip':
      return m((a) => str(stripChars(s, a[0], true, false)));
    case 'rstrip':
      return m((a) => str(stripChars(s, a[0], false, true)));
    case 'split':
      return m((a) => arr(pySplit(s, a[0], a[1] ? (a[1].value as number) : -1, budget).map(str)));
    case 'lower':
      return m(() => str(pyLower(s)));
    case 'upper':
      return m(() => str(pyUpper(s)));
    case 'replace':
      return m((a) => {
        const from = a[0]!.value as string;
        const to = a[1]!.value as string;
        const count = a[2] ? (a[2].value as number) : -1;
        const parts = s.split(from);
        const n = count < 0 ? parts.length - 1 : Math.min(count, parts.length - 1);
        budget.chars(s.length + n * (to.length - from.length), 'str.replace() result');
        if (count < 0) return str(parts.join(to));
        return str(
          parts.slice(0, count + 1).join(to) +
            (parts.length > count + 1 ? from + parts.slice(count + 1).join(from) : ''),
        );
      });
    case 'startswith':
    case 'endswith':
      return m((a) => {
        const p = a[0]!;
        const pats = isArray(p)
          ? (p.value as RV[]).map((x) => x.value as string)
          : [p.value as string];
        return bool(pats.some((x) => (name === 'startswith' ? s.startsWith(x) : s.endsWith(x))));
      });
    case 'find':
      return m((a) => int(s.indexOf(a[0]!.value as string)));
    case 'count':
      return m((a) => {
        const sub = a[0]!.value as string;
        return int(sub === '' ? [...s].length + 1 : s.split(sub).length - 1);
      });
    case 'join':
      return m((a) => {
        const parts = asSequence(a[0]!, 'join', budget).map(pyStr);
        budget.chars(joinedLength(parts, s.length), 'str.join() result');
        return str(parts.join(s));
      });
    case 'capitalize':
      return m(() => str(pyCapitalize(s)));
    case 'title':
      return m(() => str(pyTitle(s)));
    case 'isdigit':
      return m(() => bool(s.length > 0 && /^\p{Nd}+$/u.test(s)));
    case 'isalpha':
      return m(() => bool(s.length > 0 && /^\p{L}+$/u.test(s)));
    case 'isupper':
      return m(() => bool(/\p{L}/u.test(s) && s === s.toUpperCase()));
    case 'islower':
      return m(() => bool(/\p{L}/u.test(s) && s === s.toLowerCase()));
    default:
      return undefined;
  }
}

function dictMethod(d: Map<string, RV>, name: string): RV | undefined {
  switch (name) {
    case 'keys':
      return fn(() => arr([...d.keys()].map(str)));
    case 'values':
      return fn(() => arr([...d.values()]));
    case 'items':
      return fn(() => arr([...d.entries()].map(([k, v]) => arr([str(k), v]))));
    case 'get':
      return fn((args) => {
        const [k, dflt] = positional(args);
        return d.get(pyStr(k!)) ?? dflt ?? none();
      });
    case 'update':
      return fn((args) => {
        for (const a of args) {
          if (isMapping(a)) for (const [k, v] of a.value as Map<string, RV>) d.set(k, v);
          else
            throw new JinjaRenderError(`TypeError: dict.update() expects a mapping, got ${a.type}`);
        }
        return none();
      });
    case 'pop':
      return fn((args) => {
        const [k, dflt] = positional(args);
        const key = pyStr(k!);
        const v = d.get(key);
        if (v === undefined) {
          if (dflt) return dflt;
          throw new JinjaRenderError(`KeyError: ${pyStrRepr(key)}`);
        }
        d.delete(key);
        return v;
      });
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Filters that PromptSource templates rely on

/** Jinja2's do_truncate; lengths are Python len(), in code points. */
function truncate(s: string, length = 255, killwords = false, end = '...', leeway = 5): string {
  const cps = [...s];
  if (cps.length <= length + leeway) return s;
  const head = cps.slice(0, Math.max(0, length - pyLen(end))).join('');
  if (killwords) return head + end;
  const cut = head.lastIndexOf(' ');
  return (cut >= 0 ? head.slice(0, cut) : head) + end;
}

/** Jinja2's do_title: split on runs of [-\s({[<] (Python \s), first code point upper, rest lower. */
function jinjaTitle(s: string): string {
  return s
    .split(
      /([-\t\n\v\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000({[<]+)/,
    )
    .filter((item) => item !== '')
    .map((item) => {
      const [first, ...rest] = [...item];
      return pyUpper(first!) + pyLower(rest.join(''));
    })
    .join('');
}

/**
 * A string equal for two values exactly when pyEquals is true (1, 1.0 and True share one), so
 * `unique` and `most_frequent` group in one pass instead of comparing every pair (quadratic: a
 * 20,000-item range took minutes). Undefined for NaN, which equals nothing.
 */
function eqKey(v: RV): string | undefined {
  switch (v.type) {
    case 'IntegerValue':
    case 'FloatValue':
    case 'BooleanValue': {
      const n = Number(v.value);
      return Number.isNaN(n) ? undefined : `n${n}`;
    }
    case 'StringValue':
      return `s${(v.value as string).length}:${v.value as string}`;
    case 'NullValue':
      return 'N';
    case 'UndefinedValue':
      return 'U';
    case 'ArrayValue':
    case 'TupleValue': {
      const ks: string[] = [];
      for (const x of v.value as RV[]) {
        const k = eqKey(x);
        if (k === undefined) return undefined;
        ks.push(`${k.length}:${k}`);
      }
      return `${v.type === 'TupleValue' ? 't' : 'a'}[${ks.join('')}]`;
    }
    case 'ObjectValue':
    case 'KeywordArgumentsValue': {
      const ks: string[] = [];
      for (const [name, x] of [...(v.value as Map<string, RV>)].sort(([a], [b]) =>
        a < b ? -1 : a > b ? 1 : 0,
      )) {
        const k = eqKey(x);
        if (k === undefined) return undefined;
        ks.push(`${name.length}:${name}${k.length}:${k}`);
      }
      return `m{${ks.join('')}}`;
    }
    default:
      return undefined;
  }
}

/** Distinct items in first-seen order with their counts (pyEquals equality). */
function groupEqual(items: readonly RV[], budget: Budget): { item: RV; n: number }[] {
  const groups: { item: RV; n: number }[] = [];
  const byKey = new Map<string, { item: RV; n: number }>();
  const other: { item: RV; n: number }[] = [];
  for (let i = 0; i < items.length; i++) {
    budget.poll(i);
    const it = items[i]!;
    const k = eqKey(it);
    const hit = k !== undefined ? byKey.get(k) : other.find((c) => pyEquals(c.item, it));
    if (hit) {
      hit.n++;
      continue;
    }
    const g = { item: it, n: 1 };
    groups.push(g);
    if (k !== undefined) byKey.set(k, g);
    else other.push(g);
  }
  return groups;
}

function mostFrequent(items: RV[], budget: Budget): RV {
  if (items.length === 0) return none();
  const counts = groupEqual(items, budget);
  // Counter.most_common orders by count, stable for ties (first seen first).
  let top = 0;
  for (const c of counts) if (c.n > top) top = c.n;
  return arr(counts.filter((c) => c.n === top).map((c) => c.item));
}

function asSequence(v: RV, filter: string, budget: Budget): RV[] {
  if (isArray(v)) return v.value as RV[];
  if (v.type === 'StringValue') {
    // One value per character: check before building them (a 4M-character string is ~200 MB).
    budget.items((v.value as string).length, `characters of a string (filter ${filter})`);
    return [...(v.value as string)].map(str);
  }
  if (isMapping(v)) return [...(v.value as Map<string, RV>).keys()].map(str);
  if (v.type === 'UndefinedValue') return [];
  throw new JinjaRenderError(`TypeError: '${v.type}' is not iterable (filter ${filter})`);
}

// ---------------------------------------------------------------------------------------------
// The interpreter

export interface RenderState {
  /** RNG behind `choice` and `random`; Python-compatible so renders match Jinja2 for a seed. */
  rng: PyRandom;
  /** Overrides of the template's limits for this render. */
  limits?: Partial<JinjaLimits>;
}

interface Node {
  type: string;
  value?: unknown;
  [k: string]: unknown;
}

type BaseMethod = (this: unknown, ...args: unknown[]) => RV;
const baseProto = Interpreter.prototype as unknown as Record<string, BaseMethod>;

class PyInterpreter extends (Interpreter as unknown as new (
  env: unknown,
) => {
  evaluate(node: unknown, env: unknown): RV;
  evaluateArguments(args: unknown[], env: unknown): [RV[], Map<string, RV>];
}) {
  readonly #state: RenderState;
  readonly #budget: Budget;
  /** Nesting depth of evaluateBlock, and the depth and output size of each open for loop. */
  #blockDepth = 0;
  readonly #loops: { depth: number; chars: number }[] = [];

  constructor(env: unknown, state: RenderState, budget: Budget) {
    super(env);
    this.#state = state;
    this.#budget = budget;
  }

  // Every expression and statement passes here: count the step, and check what it built before
  // a caller can grow it further (concatenation at most doubles a checked value).
  override evaluate(node: unknown, environment: unknown): RV {
    this.#budget.step();
    const v = super.evaluate(node, environment);
    if (v.type === 'StringValue') this.#budget.chars((v.value as string).length, 'a string');
    else if (v.type === 'ArrayValue' || v.type === 'TupleValue')
      this.#budget.items((v.value as RV[]).length, 'a list');
    return v;
  }

  // The library's for loop calls evaluateBlock once per iteration on its body, one block level
  // below the loop, and appends the body's output to its result: count both there.
  evaluateFor(node: Node, environment: unknown): RV {
    this.#loops.push({ depth: this.#blockDepth, chars: 0 });
    try {
      return this.#base('evaluateFor', node, environment);
    } finally {
      this.#loops.pop();
    }
  }

  /** A filter's arguments, already evaluated, for the library's applyFilter to reuse. */
  #evaluatedArgs: { node: unknown; result: [RV[], Map<string, RV>] } | undefined;

  // applyFilter evaluates a filter's arguments once, then may hand the filter to the library,
  // which would evaluate them again: a `choice` or `random` in them would draw twice, unlike
  // Jinja2. The library gets the first evaluation instead.
  override evaluateArguments(args: unknown[], env: unknown): [RV[], Map<string, RV>] {
    const pre = this.#evaluatedArgs;
    if (pre !== undefined && pre.node === args) {
      this.#evaluatedArgs = undefined;
      return pre.result;
    }
    return super.evaluateArguments(args, env);
  }

  /** Calls the library's implementation of a method this class overrides. */
  #base(name: string, ...args: unknown[]): RV {
    return baseProto[name]!.call(this, ...args);
  }

  evaluateBlock(statements: unknown[], environment: unknown): RV {
    const loop = this.#loops.at(-1);
    const body = loop !== undefined && loop.depth === this.#blockDepth ? loop : undefined;
    if (body) this.#budget.iteration();
    this.#blockDepth++;
    let out = '';
    try {
      for (const s of statements) {
        const v = this.evaluate(s, environment);
        if (v.type !== 'NullValue' && v.type !== 'UndefinedValue') out += pyStr(v);
        else if (v.type === 'NullValue' && (s as Node).type !== 'Set' && isExpression(s as Node))
          out += 'None';
        this.#budget.chars(out.length, 'a block output');
      }
    } finally {
      this.#blockDepth--;
    }
    if (body) {
      body.chars += out.length;
      this.#budget.chars(body.chars, 'a for loop output');
    }
    return str(out);
  }

  evaluateBinaryExpression(node: Node, environment: unknown): RV {
    const op = (node.operator as Node).value as string;
    if (op === '==' || op === '!=') {
      const l = this.evaluate(node.left, environment);
      const r = this.evaluate(node.right, environment);
      const eq = pyEquals(l, r);
      return bool(op === '==' ? eq : !eq);
    }
    if (op === '*') return this.#multiply(node, environment);
    if (op === 'in' || op === 'not in') {
      const l = this.evaluate(node.left, environment);
      const r = this.evaluate(node.right, environment);
      let found: boolean;
      if (r.type === 'StringValue') found = (r.value as string).includes(pyStr(l));
      else if (isMapping(r)) found = (r.value as Map<string, RV>).has(pyStr(l));
      else if (isArray(r)) found = (r.value as RV[]).some((x) => pyEquals(x, l));
      else if (r.type === 'UndefinedValue') found = false;
      else throw new JinjaRenderError(`TypeError: argument of type '${r.type}' is not iterable`);
      return bool(op === 'in' ? found : !found);
    }
    return this.#base('evaluateBinaryExpression', node, environment);
  }

  /** Python's `*`: numbers, and str / list repetition (checked before it is built). */
  #multiply(node: Node, environment: unknown): RV {
    const l = this.evaluate(node.left, environment);
    const r = this.evaluate(node.right, environment);
    const num = (v: RV) => v.type === 'IntegerValue' || v.type === 'FloatValue';
    if (num(l) && num(r)) {
      const p = (l.value as number) * (r.value as number);
      return l.type === 'FloatValue' || r.type === 'FloatValue' ? new FloatV(p) : int(p);
    }
    const [seq, n] = r.type === 'IntegerValue' ? [l, r] : [r, l];
    if (n.type === 'IntegerValue') {
      const times = Math.max(0, n.value as number);
      if (seq.type === 'StringValue') {
        this.#budget.chars((seq.value as string).length * times, 'str * int result');
        return str((seq.value as string).repeat(times));
      }
      if (isArray(seq)) {
        const xs = seq.value as RV[];
        this.#budget.items(xs.length * times, 'list * int result');
        return arr(Array.from({ length: xs.length * times }, (_, i) => xs[i % xs.length]!));
      }
    }
    throw new JinjaRenderError(
      `TypeError: unsupported operand type(s) for *: '${l.type}' and '${r.type}'`,
    );
  }

  evaluateMemberExpression(expr: Node, environment: unknown): RV {
    const object = this.evaluate(expr.object, environment);
    const prop = expr.property as Node;
    if (!expr.computed && prop.type === 'Identifier') {
      const name = prop.value as string;
      if (object.type === 'StringValue') {
        const m = stringMethod(object.value as string, name, this.#budget);
        if (m) return m;
      } else if (isMapping(object)) {
        const d = object.value as Map<string, RV>;
        if (d.has(name)) return d.get(name)!;
        const m = dictMethod(d, name);
        if (m) return m;
        return undef();
      }
    }
    if (object.type === 'NullValue' || (object.type === 'BooleanValue' && expr.computed)) {
      return undef();
    }
    if (object.type === 'UndefinedValue') {
      const what =
        prop.type === 'Identifier' || prop.type === 'StringLiteral' ? String(prop.value) : 'item';
      throw new JinjaRenderError(
        `UndefinedError: undefined value has no attribute or item '${what}'`,
      );
    }
    if (expr.computed && isArray(object) && prop.type !== 'SliceExpression') {
      const key = this.evaluate(prop, environment);
      if (key.type === 'BooleanValue')
        return (object.value as RV[]).at(key.value ? 1 : 0) ?? undef();
    }
    return this.#base('evaluateMemberExpression', expr, environment);
  }

  applyFilter(operand: RV, filterNode: Node, environment: unknown): RV {
    const isCall = filterNode.type === 'CallExpression';
    const name = (isCall ? (filterNode.callee as Node).value : filterNode.value) as string;
    const [args, kwargs] = isCall
      ? this.evaluateArguments(filterNode.args as unknown[], environment)
      : [[] as RV[], new Map<string, RV>()];
    const toBase = (): RV => {
      if (isCall) this.#evaluatedArgs = { node: filterNode.args, result: [args, kwargs] };
      try {
        return this.#base('applyFilter', operand, filterNode, environment);
      } finally {
        this.#evaluatedArgs = undefined;
      }
    };
    const arg = (i: number, key: string): RV | undefined => args[i] ?? kwargs.get(key);
    switch (name) {
      case 'string':
        return str(pyStr(operand));
      case 'truncate': {
        const len = arg(0, 'length');
        const kill = arg(1, 'killwords');
        const end = arg(2, 'end');
        const lee = arg(3, 'leeway');
        return str(
          truncate(
            pyStr(operand),
            len ? (len.value as number) : 255,
            kill ? Boolean(kill.value) : false,
            end ? pyStr(end) : '...',
            lee ? (lee.value as number) : 5,
          ),
        );
      }
      case 'choice':
      case 'random': {
        const seq = asSequence(operand, name, this.#budget);
        if (seq.length === 0) {
          if (name === 'random')
            throw new JinjaRenderError('UndefinedError: No random item, sequence was empty.');
          throw new JinjaRenderError('IndexError: Cannot choose from an empty sequence');
        }
        return seq[this.#state.rng.randbelow(seq.length)]!;
      }
      case 'most_frequent':
        return mostFrequent(asSequence(operand, name, this.#budget), this.#budget);
      case 'join': {
        const sep = arg(0, 'd');
        const d = sep ? pyStr(sep) : '';
        const parts = asSequence(operand, name, this.#budget).map(pyStr);
        this.#budget.chars(joinedLength(parts, d.length), 'join filter result');
        return str(parts.join(d));
      }
      case 'replace':
        return (stringMethod(pyStr(operand), 'replace', this.#budget)!.value as Fn)(
          args,
          environment,
        );
      case 'indent': {
        const width = arg(0, 'width');
        const w = width?.type === 'IntegerValue' ? (width.value as number) : 4;
        const s = pyStr(operand);
        this.#budget.chars(s.length + w * s.split('\n').length, 'indent filter result');
        return toBase();
      }
      case 'tojson': {
        const indent = arg(0, 'indent');
        if (indent?.type === 'IntegerValue')
          this.#budget.chars((indent.value as number) * countValues(operand), 'tojson result');
        return toBase();
      }
      case 'list':
        return arr(asSequence(operand, name, this.#budget));
      case 'first':
      case 'last': {
        // Jinja2's do_first / do_last: an empty sequence gives Undefined (renders as ''), not
        // an error.
        if (!isArray(operand) && operand.type !== 'StringValue') return toBase();
        const seq = isArray(operand)
          ? (operand.value as RV[])
          : [...(operand.value as string)].map(str);
        return (name === 'first' ? seq[0] : seq.at(-1)) ?? undef();
      }
      case 'length':
      case 'count':
        if (operand.type === 'StringValue') return int([...(operand.value as string)].length);
        return int(asSequence(operand, name, this.#budget).length);
      case 'lower':
        return str(pyLower(pyStr(operand)));
      case 'upper':
        return str(pyUpper(pyStr(operand)));
      case 'capitalize':
        return str(pyCapitalize(pyStr(operand)));
      case 'title':
        return str(jinjaTitle(pyStr(operand)));
      case 'trim': {
        const chars = arg(0, 'chars');
        return str(stripChars(pyStr(operand), chars, true, true));
      }
      case 'wordcount':
        // Python's \w is exactly [\p{L}\p{N}_] (checked over all code points, Unicode 14).
        return int(pyStr(operand).match(/[\p{L}\p{N}_]+/gu)?.length ?? 0);
      case 'round': {
        // Jinja2's do_round: 'common' is Python's round(value, precision), always a float.
        const precision = arg(0, 'precision');
        const method = arg(1, 'method');
        const p = precision ? Number(precision.value) : 0;
        const how = method ? pyStr(method) : 'common';
        const v = Number(operand.value);
        if (operand.type !== 'IntegerValue' && operand.type !== 'FloatValue')
          throw new JinjaRenderError(`TypeError: round filter needs a number, got ${operand.type}`);
        // round() of a Python int stays an int.
        if (how === 'common')
          return operand.type === 'IntegerValue' ? int(pyRound(v, p)) : new FloatV(pyRound(v, p));
        if (how !== 'ceil' && how !== 'floor')
          throw new JinjaRenderError('FilterArgumentError: method must be common, ceil or floor');
        const f = how === 'ceil' ? Math.ceil : Math.floor;
        return new FloatV(f(v * 10 ** p) / 10 ** p);
      }
      case 'unique':
        return arr(
          groupEqual(asSequence(operand, name, this.#budget), this.#budget).map((c) => c.item),
        );
      default:
        return toBase();
    }
  }
}

/** Values in a nested value (an upper bound on the lines of its indented JSON). */
function countValues(v: RV): number {
  if (isArray(v)) return 1 + (v.value as RV[]).reduce((n, x) => n + countValues(x), 0);
  if (isMapping(v) || v.type === 'NamespaceValue')
    return 1 + [...(v.value as Map<string, RV>).values()].reduce((n, x) => n + countValues(x), 0);
  return 1;
}

const EXPRESSION_TYPES = new Set([
  'Identifier',
  'MemberExpression',
  'CallExpression',
  'FilterExpression',
  'BinaryExpression',
  'UnaryExpression',
  'Ternary',
  'TestExpression',
  'SelectExpression',
  'NullLiteral',
]);
function isExpression(node: Node): boolean {
  return EXPRESSION_TYPES.has(node.type);
}

// ---------------------------------------------------------------------------------------------
// Compiled templates

export interface JinjaOptions {
  /** Jinja2 `trim_blocks` (HF chat templates: true; PromptSource: false). */
  trimBlocks?: boolean;
  /** Jinja2 `lstrip_blocks` (HF chat templates: true; PromptSource: false). */
  lstripBlocks?: boolean;
  /** Extra global callables, e.g. HF's raise_exception and strftime_now. */
  globals?: Record<string, (...args: unknown[]) => unknown>;
  /** Name used in limit errors (e.g. 'chat_template' or a file). */
  name?: string;
  /** Budgets of each render (default DEFAULT_JINJA_LIMITS); a render may override them. */
  limits?: Partial<JinjaLimits>;
}

/** Globals every environment gets: Python's zip, plus what the library already defines. */
function pyZip(args: RV[], budget: Budget): RV {
  const seqs = positional(args).map((a) => asSequence(a, 'zip', budget));
  const n = seqs.length === 0 ? 0 : Math.min(...seqs.map((s) => s.length));
  const TupleV = tupleCtor();
  return arr(Array.from({ length: n }, (_, i) => new TupleV(seqs.map((s) => s[i]!))));
}

let tupleCtorCache: Ctor | undefined;
function tupleCtor(): Ctor {
  if (!tupleCtorCache) {
    const env = new Environment();
    const v = new Interpreter(env).evaluate(
      { type: 'TupleLiteral', value: [] } as unknown as Parameters<Interpreter['evaluate']>[0],
      env,
    ) as unknown as { constructor: Ctor };
    tupleCtorCache = v.constructor;
  }
  return tupleCtorCache;
}

export class JinjaTemplate {
  readonly source: string;
  readonly #program: unknown;
  readonly #globals: Record<string, (...args: unknown[]) => unknown>;
  readonly #name: string;
  readonly #limits: JinjaLimits;

  /** @throws SyntaxError (from the parser) when the source does not parse. */
  constructor(source: string, opts: JinjaOptions = {}) {
    this.source = source;
    const tokens = tokenize(source, {
      trim_blocks: opts.trimBlocks ?? false,
      lstrip_blocks: opts.lstripBlocks ?? false,
    });
    this.#program = parse(tokens);
    this.#globals = opts.globals ?? {};
    this.#name = opts.name ?? '(inline)';
    this.#limits = resolveLimits(DEFAULT_JINJA_LIMITS, opts.limits);
  }

  /**
   * Renders with `context` (plain JSON-like values; functions become callables).
   * @throws JinjaLimitError when the render goes over a limit, JinjaRenderError or Error from
   *   the interpreter on a failing expression.
   */
  render(context: Record<string, unknown>, state: RenderState = { rng: new PyRandom(0) }): string {
    const budget = new Budget(resolveLimits(this.#limits, state.limits), this.#name);
    const env = new Environment();
    const globals: Record<string, unknown> = {
      false: false,
      true: true,
      none: null,
      False: false,
      True: true,
      None: null,
    };
    for (const [k, v] of Object.entries(globals)) env.set(k, v);
    (env as unknown as { variables: Map<string, RV> }).variables.set(
      'zip',
      fn((args) => pyZip(args, budget)),
    );
    (env as unknown as { variables: Map<string, RV> }).variables.set(
      'range',
      fn((args) => {
        const a = positional(args).map((x) => x.value as number);
        const [start, stop, step] = a.length === 1 ? [0, a[0]!, 1] : [a[0]!, a[1]!, a[2] ?? 1];
        if (step === 0) throw new JinjaRenderError('ValueError: range() arg 3 must not be zero');
        budget.items(Math.max(0, Math.ceil((stop - start) / step)), 'range()');
        const out: RV[] = [];
        for (let i = start; step > 0 ? i < stop : i > stop; i += step) {
          budget.poll(out.length);
          out.push(int(i));
        }
        return arr(out);
      }),
    );
    for (const [k, f] of Object.entries(this.#globals)) env.set(k, f);
    for (const [k, v] of Object.entries(context)) {
      if (v instanceof JinjaValue)
        (env as unknown as { variables: Map<string, RV> }).variables.set(k, v.rv);
      else env.set(k, v);
    }
    const interp = new PyInterpreter(env, state, budget);
    try {
      return interp.evaluate(this.#program, env).value as string;
    } catch (e) {
      // V8's own ceilings (string length, stack depth) are typed errors here too.
      if (e instanceof RangeError) {
        if (/string length/i.test(e.message))
          budget.fail('maxChars', 'a string over the engine maximum');
        throw new JinjaRenderError(`RecursionError in template ${this.#name}: ${e.message}`);
      }
      throw e;
    }
  }
}

function resolveLimits(base: Readonly<JinjaLimits>, over?: Partial<JinjaLimits>): JinjaLimits {
  const out = { ...base };
  for (const [k, v] of Object.entries(over ?? {}) as [keyof JinjaLimits, number | undefined][]) {
    if (v === undefined) continue;
    if (!Object.hasOwn(DEFAULT_JINJA_LIMITS, k))
      throw new JinjaRenderError(`unknown Jinja limit '${k}'`);
    if (!(typeof v === 'number' && v > 0))
      throw new JinjaRenderError(`Jinja limit ${k} must be a positive number, got ${String(v)}`);
    out[k] = v;
  }
  return out;
}

/** Wraps a runtime value built by `toRuntime` so render() passes it through unchanged. */
export class JinjaValue {
  constructor(readonly rv: RV) {}
}

/** Converts a JS value (from JSON) to a runtime value, keeping integer vs float as Python does. */
export function toRuntime(v: unknown, floats?: ReadonlySet<string>, path = ''): RV {
  if (v === null) return none();
  if (v === undefined) return undef();
  if (typeof v === 'string') return str(v);
  if (typeof v === 'boolean') return bool(v);
  if (typeof v === 'number')
    return Number.isInteger(v) && !floats?.has(path) ? int(v) : new FloatV(v);
  if (Array.isArray(v)) return arr(v.map((x, i) => toRuntime(x, floats, `${path}[${i}]`)));
  if (typeof v === 'object') {
    const m = new Map<string, RV>();
    for (const [k, x] of Object.entries(v as Record<string, unknown>))
      m.set(k, toRuntime(x, floats, path ? `${path}.${k}` : k));
    return new ObjectV(m);
  }
  throw new JinjaRenderError(`cannot pass a ${typeof v} to a template`);
}
