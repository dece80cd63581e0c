// Worker threads running TypeScript sources. Node 20 workers do not inherit the parent's
// `--import tsx` loader, so a small bootstrap registers tsx's ESM hooks in the worker before
// importing the entry module.
import { Worker } from 'node:worker_threads';

/** Starts a worker on a .ts entry module (a file: URL), passing `workerData`. */
export function spawnTsWorker(entry: URL, workerData?: unknown): Worker {
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}
