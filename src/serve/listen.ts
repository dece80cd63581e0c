// Starts the OpenAI-compatible server on a port: the inference worker plus the Hono app served
// by @hono/node-server. Returns a handle to stop both.
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { createApp, type ServeOptions } from './app.ts';
import { InferenceEngine } from './engine.ts';

export interface ListenOptions extends ServeOptions {
  /** HF model directory. */
  model: string;
  /** PEFT adapter directory, merged into the model at load. */
  adapter?: string;
  /** @default 8000; 0 picks a free port. */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Sequences decoded together. @default 32 */
  maxBatch?: number;
  /** Requests in flight before answering 429. @default 64 */
  maxConcurrent?: number;
}

export interface RunningServer {
  url: string;
  port: number;
  engine: InferenceEngine;
  close(): Promise<void>;
}

export async function startServer(o: ListenOptions): Promise<RunningServer> {
  const engine = await InferenceEngine.start({
    model: o.model,
    adapter: o.adapter,
    maxBatch: o.maxBatch,
    maxConcurrent: o.maxConcurrent,
  });
  const app = createApp(engine, o);
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve(
      { fetch: app.fetch, port: o.port ?? 8000, hostname: o.host ?? '127.0.0.1' },
      () => resolve(s),
    );
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${o.host ?? '127.0.0.1'}:${port}/v1`,
    port,
    engine,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await engine.close();
    },
  };
}
