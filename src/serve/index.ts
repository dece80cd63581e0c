// instructkit/serve: an OpenAI-compatible HTTP server for instructkit models (Hono), with the
// model in a worker thread and step-level batching of concurrent requests.
//
//   const s = await startServer({ model: 'runs/demo/tuned', port: 8000, modelName: 'tiny' });
//   // ... new OpenAI({ baseURL: s.url }) ...
//   await s.close();
export * from './app.ts';
export * from './engine.ts';
export type { ServeLog, ServeLogEntry } from './errors.ts';
export * from './listen.ts';
export * from './protocol.ts';
export { ChatRequest, CompletionRequest } from './schemas.ts';
