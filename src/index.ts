// instructkit: the library entry point. Each stage is also importable on its own
// (instructkit/data, instructkit/engine, ...).
export * as data from './data/index.ts';
export * as engine from './engine/index.ts';
export * as evaluation from './eval/index.ts';
export * as models from './models/index.ts';
export * as pipeline from './pipeline/index.ts';
export * as serve from './serve/index.ts';
export * as synth from './synth/index.ts';
export * as train from './train/index.ts';
export * from './util/errors.ts';
export { Rng } from './util/rng.ts';
