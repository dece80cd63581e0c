// instructkit/eval: evaluation tasks (lm-evaluation-harness-style YAML), backends (any
// OpenAI-compatible endpoint; instructkit models), scoring (multiple choice by log-likelihood,
// exact match / ROUGE-L / F1 with Super-NI normalisation, MMLU and BBH formats), held-out
// reports with paired bootstrap intervals, and an order-swapped LLM judge.
//
//   const task = loadTaskFile('tasks/boolq.yaml');
//   const backend = new EndpointBackend(new LlmClient({ endpoints: [{ base_url }], model }));
//   const result = await evaluateTask(task, backend);
//   const ni = superNiTask('task1146_country_capital.json'); // Tk-Instruct encoding, EM + ROUGE-L
export * from './backend.ts';
export * from './builders.ts';
export * from './extract.ts';
export * from './heldout.ts';
export * from './judge.ts';
export * from './local.ts';
export * from './metrics.ts';
export * from './mmlu.ts';
export * from './report.ts';
export * from './run.ts';
export * from './task.ts';
