// instructkit/synth: an OpenAI-compatible LLM client and the synthetic-data pipelines built on it
// (Self-Instruct, Alpaca-style generation), with resumable runs and reject-reason reports.
//
//   const client = new LlmClient({ endpoints: [{ base_url: 'http://127.0.0.1:8000/v1' }], model: 'm', cache_dir: '.cache' });
//   await client.chat({ messages: [{ role: 'user', content: 'Hi' }] });
//   await runSelfInstruct({ seed_tasks: 'seed_tasks.jsonl', out_dir: 'runs/si', target: 1000 }, { client });
export * from './alpaca.ts';
export * from './cache.ts';
export * from './client.ts';
export * from './cost.ts';
export * from './filters.ts';
export * from './parse.ts';
export * from './prompts.ts';
export * from './run-state.ts';
export * from './seed-tasks.ts';
export * from './self-instruct.ts';
export * from './text-call.ts';
