// All debug and tuning knobs read from the environment, declared in one place.
// No other file reads process.env for instructkit settings.
import { availableParallelism } from 'node:os';

function int(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number.parseInt(raw, 10);
  if (!Number.isFinite(v)) throw new Error(`${name} must be an integer, got '${raw}'`);
  return v;
}

function flag(name: string): boolean {
  const raw = process.env[name];
  return raw !== undefined && raw !== '' && raw !== '0' && raw.toLowerCase() !== 'false';
}

export const env = {
  /** IK_DEBUG=1: verbose logging. */
  get debug(): boolean {
    return flag('IK_DEBUG');
  },
  /** IK_THREADS: intra-op threads for onnxruntime (default: all cores). */
  get threads(): number {
    return int('IK_THREADS', availableParallelism());
  },
  /** IK_DUMP_GRAPH=dir: write every built ONNX graph to this folder for inspection. */
  get dumpGraphDir(): string | undefined {
    const v = process.env.IK_DUMP_GRAPH;
    return v === undefined || v === '' ? undefined : v;
  },
  /** NO_COLOR / non-TTY: plain progress output. */
  get plainOutput(): boolean {
    return flag('NO_COLOR') || flag('CI') || !process.stderr.isTTY;
  },
  /** Reads a variable the user named in a config (e.g. the one holding an API key). */
  named(name: string): string | undefined {
    const v = process.env[name];
    return v === undefined || v === '' ? undefined : v;
  },
} as const;
