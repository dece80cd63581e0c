// Elementwise op table entries: broadcasting binary arithmetic, unary math and activations,
// comparisons, Where and Cast. Each entry pairs its ONNX emission with its vjp; binary
// gradients end with sumTo, which undoes broadcasting.
import { ShapeError } from '../util/errors.ts';
import type { DType } from './dtype.ts';
import { isFloat } from './dtype.ts';
import type { Emitter, Node, OpDef, Var } from './graph.ts';
import { apply1, lift, needFloat, sameDtype, simpleOp, sumTo } from './ops-core.ts';
import { broadcast } from './shape.ts';

type NoAttrs = Record<string, never>;
const none: NoAttrs = {};

function binary(
  name: string,
  onnx: string,
  vjp?: OpDef<NoAttrs>['vjp'],
  outDtype?: DType,
): OpDef<NoAttrs> {
  return simpleOp<NoAttrs>({
    name,
    onnx,
    infer: (xs) => {
      const d = sameDtype(name, xs);
      return [{ dtype: outDtype ?? d, shape: broadcast(name, xs[0]!.shape, xs[1]!.shape) }];
    },
    ...(vjp ? { vjp } : {}),
  });
}

function unary(name: string, onnx: string, vjp: OpDef<NoAttrs>['vjp'], domain?: string) {
  return simpleOp<NoAttrs>({
    name,
    onnx,
    ...(domain ? { domain } : {}),
    infer: (xs) => {
      needFloat(name, xs[0]!);
      return [{ dtype: xs[0]!.dtype, shape: xs[0]!.shape }];
    },
    vjp,
  });
}

const ADD = binary('add', 'Add', (n, [dy], need) => [
  need[0] ? sumTo(dy!, n.inputs[0]!.shape) : undefined,
  need[1] ? sumTo(dy!, n.inputs[1]!.shape) : undefined,
]);
const SUB = binary('sub', 'Sub', (n, [dy], need) => [
  need[0] ? sumTo(dy!, n.inputs[0]!.shape) : undefined,
  need[1] ? sumTo(neg(dy!), n.inputs[1]!.shape) : undefined,
]);
const MUL = binary('mul', 'Mul', (n, [dy], need) => {
  const [a, b] = n.inputs as [Var, Var];
  if (a === b) return [mul(mul(dy!, a), 2), undefined]; // x·x: one contribution, no Sum node
  return [
    need[0] ? sumTo(mul(dy!, b), a.shape) : undefined,
    need[1] ? sumTo(mul(dy!, a), b.shape) : undefined,
  ];
});
const DIV = binary('div', 'Div', (n, [dy], need) => {
  // y = a/b: da = dy/b, db = -dy*y/b
  const [a, b] = n.inputs as [Var, Var];
  const da = div(dy!, b);
  return [
    need[0] ? sumTo(da, a.shape) : undefined,
    need[1] ? sumTo(neg(mul(da, n.outputs[0]!)), b.shape) : undefined,
  ];
});
const POW = binary('pow', 'Pow', (n, [dy], need) => {
  // y = a^b: da = dy*b*a^(b-1), db = dy*y*ln(a)
  const [a, b] = n.inputs as [Var, Var];
  const y = n.outputs[0]!;
  return [
    need[0] ? sumTo(mul(dy!, mul(b, pow(a, sub(b, 1)))), a.shape) : undefined,
    need[1] ? sumTo(mul(dy!, mul(y, log(a))), b.shape) : undefined,
  ];
});
const MAX2 = binary('maximum', 'Max', (n, [dy], need) => minMaxVjp(n, dy!, need, true));
const MIN2 = binary('minimum', 'Min', (n, [dy], need) => minMaxVjp(n, dy!, need, false));

function minMaxVjp(n: Node<NoAttrs>, dy: Var, need: readonly boolean[], isMax: boolean) {
  // Ties send the gradient to the first operand, like torch.maximum's subgradient choice.
  const [a, b] = n.inputs as [Var, Var];
  const pickA = isMax ? greaterOrEqual(a, b) : lessOrEqual(a, b);
  const zero = dy.graph.scalar(0, dy.dtype);
  return [
    need[0] ? sumTo(where(pickA, dy, zero), a.shape) : undefined,
    need[1] ? sumTo(where(pickA, zero, dy), b.shape) : undefined,
  ];
}

const NEG = unary('neg', 'Neg', (_n, [dy]) => [neg(dy!)]);
const EXP = unary('exp', 'Exp', (n, [dy]) => [mul(dy!, n.outputs[0]!)]);
const LOG = unary('log', 'Log', (n, [dy]) => [div(dy!, n.inputs[0]!)]);
const SQRT = unary('sqrt', 'Sqrt', (n, [dy]) => [div(mul(dy!, 0.5), n.outputs[0]!)]);
const RECIP = unary('reciprocal', 'Reciprocal', (n, [dy]) => {
  const y = n.outputs[0]!;
  return [neg(mul(dy!, mul(y, y)))];
});
const SIGMOID = unary('sigmoid', 'Sigmoid', (n, [dy]) => {
  const y = n.outputs[0]!;
  return [mul(dy!, mul(y, sub(1, y)))];
});
const TANH = unary('tanh', 'Tanh', (n, [dy]) => {
  const y = n.outputs[0]!;
  return [mul(dy!, sub(1, mul(y, y)))];
});
const RELU = unary('relu', 'Relu', (n, [dy]) => {
  const x = n.inputs[0]!;
  return [where(greater(x, 0), dy!, dy!.graph.scalar(0, dy!.dtype))];
});
const ABS = unary('abs', 'Abs', (n, [dy]) => [mul(dy!, sign(n.inputs[0]!))]);
const SIGN = simpleOp<NoAttrs>({
  name: 'sign',
  onnx: 'Sign',
  infer: (xs) => [{ dtype: xs[0]!.dtype, shape: xs[0]!.shape }],
});

// Erf has no float64 kernel in onnxruntime's CPU build, so float64 graphs compute it in
// float32 (about 1e-7 relative error). Gradient checks of erf-based ops use a TS reference.
const ERF: OpDef<NoAttrs> = {
  name: 'erf',
  infer: (xs) => {
    needFloat('erf', xs[0]!);
    return [{ dtype: xs[0]!.dtype, shape: xs[0]!.shape }];
  },
  emit(e, n) {
    const x = e.name(n.inputs[0]!);
    const y = e.name(n.outputs[0]!);
    if (n.inputs[0]!.dtype === 'float32') return e.node('Erf', [x], [y]);
    const x32 = e.tmp('erf_in');
    const y32 = e.tmp('erf_out');
    e.node('Cast', [x], [x32], { to: { i: 1 } });
    e.node('Erf', [x32], [y32]);
    e.node('Cast', [y32], [y], { to: { i: 11 } });
  },
  vjp: (n, [dy]) => {
    const x = n.inputs[0]!;
    return [mul(dy!, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI)))];
  },
};

/** GELU approximation: 'none' is x·Φ(x) (erf form), 'tanh' is the GPT-2 tanh form. */
export type GeluApprox = 'none' | 'tanh';
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU: OpDef<{ approximate: GeluApprox }> = {
  name: 'gelu',
  infer: (xs) => {
    needFloat('gelu', xs[0]!);
    return [{ dtype: xs[0]!.dtype, shape: xs[0]!.shape }];
  },
  emit(e, n) {
    const x = n.inputs[0]!;
    if (x.dtype === 'float32')
      return e.node('Gelu', [e.name(x)], [e.name(n.outputs[0]!)], {
        approximate: { s: n.attrs.approximate },
      });
    // float64: ORT's Gelu(tanh) kernel is only float-accurate and Gelu(none) needs a float64
    // Erf kernel that does not exist, so both are spelled out.
    if (n.attrs.approximate === 'tanh') geluTanhF64(e, n);
    else geluErfF64(e, n);
  },
  vjp: (n, [dy]) => {
    const x = n.inputs[0]!;
    if (n.attrs.approximate === 'tanh') {
      // d/dx 0.5x(1+t), t = tanh(u), u = c(x + 0.044715x^3)
      const x2 = mul(x, x);
      const t = tanh(mul(mul(x, add(mul(x2, 0.044715), 1)), SQRT_2_OVER_PI));
      const dt = mul(sub(1, mul(t, t)), mul(add(mul(x2, 3 * 0.044715), 1), SQRT_2_OVER_PI));
      return [mul(dy!, mul(add(add(t, 1), mul(x, dt)), 0.5))];
    }
    // d/dx x·Φ(x) = Φ(x) + x·φ(x)
    const cdf = mul(add(erf(mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = mul(exp(mul(mul(x, x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
    return [mul(dy!, add(cdf, mul(x, pdf)))];
  },
};

function geluTanhF64(e: Emitter, n: Node<{ approximate: GeluApprox }>): void {
  // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
  const x = e.name(n.inputs[0]!);
  const c = (v: number) => e.constScalar(v, 'float64');
  const t = Array.from({ length: 7 }, () => e.tmp('g'));
  e.node('Mul', [x, x], [t[0]!]);
  e.node('Mul', [t[0]!, c(0.044715)], [t[1]!]);
  e.node('Add', [t[1]!, c(1)], [t[2]!]);
  e.node('Mul', [t[2]!, x], [t[3]!]);
  e.node('Mul', [t[3]!, c(SQRT_2_OVER_PI)], [t[4]!]);
  e.node('Tanh', [t[4]!], [t[5]!]);
  e.node('Add', [t[5]!, c(1)], [t[6]!]);
  const h = e.tmp('g');
  e.node('Mul', [t[6]!, c(0.5)], [h]);
  e.node('Mul', [x, h], [e.name(n.outputs[0]!)]);
}

function geluErfF64(e: Emitter, n: Node<{ approximate: GeluApprox }>): void {
  // 0.5·x·(1 + erf(x/√2)), with erf evaluated in float32 (see ERF above).
  const x = e.name(n.inputs[0]!);
  const t = [e.tmp('g'), e.tmp('g'), e.tmp('g'), e.tmp('g'), e.tmp('g'), e.tmp('g')] as const;
  e.node('Mul', [x, e.constScalar(Math.SQRT1_2, 'float64')], [t[0]]);
  e.node('Cast', [t[0]], [t[1]], { to: { i: 1 } });
  e.node('Erf', [t[1]], [t[2]]);
  e.node('Cast', [t[2]], [t[3]], { to: { i: 11 } });
  e.node('Add', [t[3], e.constScalar(1, 'float64')], [t[4]]);
  e.node('Mul', [t[4], e.constScalar(0.5, 'float64')], [t[5]]);
  e.node('Mul', [x, t[5]], [e.name(n.outputs[0]!)]);
}

// SiLU x·σ(x): com.microsoft QuickGelu(alpha=1) is one pass in float32; float64 has no
// kernel, so it becomes Sigmoid·x. The backward recomputes σ rather than keeping it alive.
const SILU: OpDef<NoAttrs> = {
  name: 'silu',
  infer: (xs) => {
    needFloat('silu', xs[0]!);
    return [{ dtype: xs[0]!.dtype, shape: xs[0]!.shape }];
  },
  emit(e, n) {
    const x = e.name(n.inputs[0]!);
    const y = e.name(n.outputs[0]!);
    if (n.inputs[0]!.dtype === 'float32')
      return e.node('QuickGelu', [x], [y], { alpha: { f: 1 } }, 'com.microsoft');
    const s = e.tmp('sig');
    e.node('Sigmoid', [x], [s]);
    e.node('Mul', [x, s], [y]);
  },
  vjp: (n, [dy]) => {
    // d/dx x·s = s + y·(1 - s)
    const s = sigmoid(n.inputs[0]!);
    const y = n.outputs[0]!;
    return [mul(dy!, add(s, mul(y, sub(1, s))))];
  },
};

const CAST: OpDef<{ to: DType }> = {
  name: 'cast',
  infer: (xs, a) => [{ dtype: a.to, shape: xs[0]!.shape }],
  emit(e, n) {
    const codes = { float32: 1, uint32: 12, int32: 6, int64: 7, bool: 9, float64: 11 };
    e.node('Cast', [e.name(n.inputs[0]!)], [e.name(n.outputs[0]!)], {
      to: { i: codes[n.attrs.to] },
    });
  },
  vjp: (n, [dy]) => [isFloat(n.inputs[0]!.dtype) ? cast(dy!, n.inputs[0]!.dtype) : undefined],
};

const WHERE = simpleOp<NoAttrs>({
  name: 'where',
  onnx: 'Where',
  infer: ([c, a, b]) => {
    if (c!.dtype !== 'bool') throw new ShapeError('where', `condition must be bool, got ${c}`);
    sameDtype('where', [a!, b!]);
    const s = broadcast('where', broadcast('where', c!.shape, a!.shape), b!.shape);
    return [{ dtype: a!.dtype, shape: s }];
  },
  vjp: (n, [dy], need) => {
    const [c, a, b] = n.inputs as [Var, Var, Var];
    const zero = dy!.graph.scalar(0, dy!.dtype);
    return [
      undefined,
      need[1] ? sumTo(where(c, dy!, zero), a.shape) : undefined,
      need[2] ? sumTo(where(c, zero, dy!), b.shape) : undefined,
    ];
  },
});

const SUM_N: OpDef<NoAttrs> = simpleOp<NoAttrs>({
  name: 'sum_n',
  onnx: 'Sum',
  infer: (xs) => {
    const d = sameDtype('sum_n', xs);
    let s = xs[0]!.shape;
    for (const x of xs.slice(1)) s = broadcast('sum_n', s, x.shape);
    return [{ dtype: d, shape: s }];
  },
  vjp: (n, [dy], need) => n.inputs.map((x, i) => (need[i] ? sumTo(dy!, x.shape) : undefined)),
});

function compare(name: string, onnx: string) {
  return binary(name, onnx, undefined, 'bool');
}
const EQUAL = compare('equal', 'Equal');
const LESS = compare('less', 'Less');
const LESS_EQ = compare('less_equal', 'LessOrEqual');
const GREATER = compare('greater', 'Greater');
const GREATER_EQ = compare('greater_equal', 'GreaterOrEqual');
const AND = compare('and', 'And');
const OR = compare('or', 'Or');
const NOT = simpleOp<NoAttrs>({
  name: 'not',
  onnx: 'Not',
  infer: ([x]) => [{ dtype: 'bool', shape: x!.shape }],
});
const IS_NAN = simpleOp<NoAttrs>({
  name: 'isnan',
  onnx: 'IsNaN',
  infer: ([x]) => [{ dtype: 'bool', shape: x!.shape }],
});
const IS_INF = simpleOp<NoAttrs>({
  name: 'isinf',
  onnx: 'IsInf',
  infer: ([x]) => [{ dtype: 'bool', shape: x!.shape }],
});

const BIT_XOR = binary('bitwise_xor', 'BitwiseXor');
function shiftOp(direction: 'LEFT' | 'RIGHT') {
  return simpleOp<NoAttrs>({
    name: `shift_${direction.toLowerCase()}`,
    onnx: 'BitShift',
    attrs: () => ({ direction: { s: direction } }),
    infer: (xs) => {
      if (xs[0]!.dtype !== 'uint32' || xs[1]!.dtype !== 'uint32')
        throw new ShapeError('bit_shift', `operands must be uint32, got ${xs[0]} and ${xs[1]}`);
      return [{ dtype: 'uint32', shape: broadcast('bit_shift', xs[0]!.shape, xs[1]!.shape) }];
    },
  });
}
const SHL = shiftOp('LEFT');
const SHR = shiftOp('RIGHT');

function bin(op: OpDef<NoAttrs>, x: Var | number, y: Var | number): Var {
  if (typeof x === 'number' && typeof y === 'number')
    throw new ShapeError(op.name, 'needs at least one tensor operand');
  const a = typeof x === 'number' ? lift(y as Var, x) : x;
  const b = lift(a, y);
  return apply1(op, [a, b], none);
}

/** a + b (broadcasting). */
export const add = (a: Var | number, b: Var | number): Var => bin(ADD, a, b);
/** a - b (broadcasting). */
export const sub = (a: Var | number, b: Var | number): Var => bin(SUB, a, b);
/** a * b (broadcasting). */
export const mul = (a: Var | number, b: Var | number): Var => bin(MUL, a, b);
/** a / b (broadcasting). */
export const div = (a: Var | number, b: Var | number): Var => bin(DIV, a, b);
/** a ** b (broadcasting). */
export const pow = (a: Var | number, b: Var | number): Var => bin(POW, a, b);
/** Elementwise max of two tensors. */
export const maximum = (a: Var | number, b: Var | number): Var => bin(MAX2, a, b);
/** Elementwise min of two tensors. */
export const minimum = (a: Var | number, b: Var | number): Var => bin(MIN2, a, b);
export const neg = (x: Var): Var => apply1(NEG, [x], none);
export const exp = (x: Var): Var => apply1(EXP, [x], none);
export const log = (x: Var): Var => apply1(LOG, [x], none);
export const sqrt = (x: Var): Var => apply1(SQRT, [x], none);
export const reciprocal = (x: Var): Var => apply1(RECIP, [x], none);
export const sigmoid = (x: Var): Var => apply1(SIGMOID, [x], none);
export const tanh = (x: Var): Var => apply1(TANH, [x], none);
export const relu = (x: Var): Var => apply1(RELU, [x], none);
export const abs = (x: Var): Var => apply1(ABS, [x], none);
export const sign = (x: Var): Var => apply1(SIGN, [x], none);
export const erf = (x: Var): Var => apply1(ERF, [x], none);
/** SiLU (swish): x·sigmoid(x). */
export const silu = (x: Var): Var => apply1(SILU, [x], none);
/** GELU; `approximate` 'none' (erf, BERT/LLaMA-family MLPs) or 'tanh' (GPT-2). */
export const gelu = (x: Var, approximate: GeluApprox = 'none'): Var =>
  apply1(GELU, [x], { approximate });
/** Convert to another dtype (the gradient is cast back). */
export const cast = (x: Var, to: DType): Var => (x.dtype === to ? x : apply1(CAST, [x], { to }));
/** cond ? a : b, broadcasting all three. */
export const where = (cond: Var, a: Var | number, b: Var | number): Var => {
  // Two numbers give a float32 result; otherwise numbers take the tensor operand's dtype.
  const like =
    typeof a !== 'number' ? a : typeof b !== 'number' ? b : cond.graph.scalar(a, 'float32');
  return apply1(WHERE, [cond, lift(like, a), lift(like, b)], none);
};
/** Sum of any number of same-dtype tensors in one node (gradient fan-in uses this). */
export const sumN = (xs: readonly Var[]): Var =>
  xs.length === 1 ? (xs[0] as Var) : apply1(SUM_N, xs, none);
export const equal = (a: Var, b: Var | number): Var => bin(EQUAL, a, b);
export const less = (a: Var, b: Var | number): Var => bin(LESS, a, b);
export const lessOrEqual = (a: Var, b: Var | number): Var => bin(LESS_EQ, a, b);
export const greater = (a: Var, b: Var | number): Var => bin(GREATER, a, b);
export const greaterOrEqual = (a: Var, b: Var | number): Var => bin(GREATER_EQ, a, b);
export const and = (a: Var, b: Var): Var => bin(AND, a, b);
export const or = (a: Var, b: Var): Var => bin(OR, a, b);
export const not = (x: Var): Var => apply1(NOT, [x], none);
export const isNan = (x: Var): Var => apply1(IS_NAN, [x], none);
export const isInf = (x: Var): Var => apply1(IS_INF, [x], none);
/** Bitwise xor of integer tensors. */
export const bitwiseXor = (a: Var, b: Var | number): Var => bin(BIT_XOR, a, b);
/** a << b for uint32 tensors. */
export const shiftLeft = (a: Var, b: Var | number): Var => bin(SHL, a, b);
/** a >> b (logical) for uint32 tensors. */
export const shiftRight = (a: Var, b: Var | number): Var => bin(SHR, a, b);
