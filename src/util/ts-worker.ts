// Worker threads running the library's own modules. Callers name the TypeScript source
// (`new URL('./worker-entry.ts', import.meta.url)`). From the sources, Node 20 workers do not
// inherit the parent's `--import tsx` loader, so a small bootstrap registers tsx's ESM hooks in
// the worker before importing the entry module. From the compiled package (dist/, where this
// file is ts-worker.js and tsx is not installed) the entry is the .js file beside the named one.
import { Worker } from 'node:worker_threads';

const compiled = import.meta.url.endsWith('.js');

/** Starts a worker on a .ts entry module (a file: URL), passing `workerData`. */
export function spawnTsWorker(entry: URL, workerData?: unknown): Worker {
  if (compiled) return new Worker(new URL(entry.href.replace(/\.ts$/, '.js')), { workerData });
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}
