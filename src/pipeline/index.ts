// instructkit/pipeline: end-to-end runs that combine the stages (the demo: pretrain a tiny model
// on facts, instruction-tune it, evaluate held-out categories before and after, export, report).
export * from './demo.ts';
export * from './report.ts';
