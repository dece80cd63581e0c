// The engine's public API: build a graph of symbolic values, differentiate it, serialise it to
// ONNX and run it with onnxruntime. Optimizers, the flat parameter store, the step runner and
// the worker thread are built on top of this (params.ts, optim.ts, schedule.ts, step.ts).
//
// Building
//   const g = new Graph({ name: 'sft' });
//   const ids = g.input('input_ids', 'int64', ['B', 'T']);      // symbolic or static dims
//   const w = g.param('wte', [V, D]);                            // a graph input; { frozen: true }
//   const c = g.constant(new Float32Array(...), [T, Dh]);         // an initializer
//   const h = gather(w, ids).matmul(w2).add(b);                   // ops as methods / functions
//   g.output('loss', loss);
//   Numbers are promoted to scalars of the other operand's dtype: x.mul(0.5), sub(1, y).
//   Every op checks shapes at build time and throws ShapeError naming the op and both shapes.
//   Dims are numbers or symbols ('B', 'T', products 'B*T', sums 'P+1'); a symbolic dim must
//   appear in some graph input's shape so its runtime value can be read. Use SessionCache
//   for static-shape buckets.
//
// Differentiating
//   const [dW, dB] = grad(loss, [W, B]);       // appends the backward to the same graph
//   - only values on a path from wrt to loss get gradient nodes; frozen params are rejected;
//   - wrt may be any float Var (e.g. views sliced from a flat parameter buffer);
//   - grad(y, xs, { seed: dy }) gives a vector-Jacobian product for non-scalar y;
//   - detach(x) cuts gradient flow; g.checkpoint(name, inputs, fn) recomputes fn's forward
//     in the backward pass instead of keeping its activations (activation checkpointing);
//   - g.composite(name, inputs, body) defines a block with a hand-written vjp.
//
// Layers and losses (composites carry hand-written backward passes)
//   rmsNorm(x, w, eps), layerNorm(x, w, b?, eps), swiglu(gate, up), gelu(x, 'none'|'tanh'),
//   silu(x), linear(x, W[out,in], b?), embedding(W, ids), dropout(x, p, seedVar, salt),
//   attention(q, k, v, mask?, scale?) with GQA, rope(x, cos, sin), ropeTables(T, Dh, theta),
//   causalMask(g, T), paddingMask(attention_mask), segmentMask(segment_ids) for packing,
//   crossEntropy(logits, targets, { ignoreIndex, reduction }), tokenLogProbs(logits, targets),
//   linearCrossEntropy(h, lmHead, targets) / linearTokenLogProbs (lm head fused with the loss).
//
// Memory and scheduling
//   memoryProfile(g) replays onnxruntime's execution order and reports peak live bytes;
//   orderAfter(x, deps) adds an ordering edge (grad() uses it so weight gradients run with
//   their layer instead of at the end of the step).
//
// Running
//   const s = await createSession(g, { threads, optimization });   // or model bytes
//   const out = await s.run({ input_ids: tensor('int64', [B, T], ids) }, ['loss']);
//   await s.run(feeds, { loss: lossBuf, dW: dWBuf });  // ORT writes into these buffers
//   toBytes(g) / toModelProto(g) / describe(model) serialise; IK_DUMP_GRAPH=dir dumps.
//   runtime.ts is the only file importing onnxruntime-node; Tensor is our own type.
//
// Checking
//   await checkOp(name, inputs, build, { reference })  // float64 autodiff vs finite diffs
export * from './attention.ts';
export * from './autodiff.ts';
export * from './composite.ts';
export * from './dtype.ts';
export * from './gradcheck.ts';
export * from './graph.ts';
export * from './memory.ts';
export * from './nn.ts';
export * from './onnx.ts';
export * from './ops.ts';
export * from './optim.ts';
export * from './params.ts';
export * from './runtime.ts';
export * from './schedule.ts';
export * from './shape.ts';
export * from './step.ts';
export * from './step-graph.ts';
export * from './worker.ts';
