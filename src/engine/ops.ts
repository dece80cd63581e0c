// The primitive op table, gathered: every primitive is one entry (shape inference, ONNX
// emission, vjp) in one of the ops-*.ts files, grouped by kind. This barrel is what Var's
// methods and the rest of the engine import. Composites with fused backward: composite.ts.

export { lift, sumTo } from './ops-core.ts';
export * from './ops-index.ts';
export * from './ops-math.ts';
export * from './ops-matmul.ts';
export * from './ops-reduce.ts';
export * from './ops-shape.ts';
