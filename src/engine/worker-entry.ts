// The training worker's entry point: receives a TrainerPlan and the initial buffers, runs a
// StepRunner, and answers step / state / load / dispose requests one at a time, in order.
// Errors are sent back as plain data and rebuilt as typed errors by worker.ts.
import { parentPort } from 'node:worker_threads';
import { StepRunner } from './step.ts';
import type { WorkerReply, WorkerRequest } from './worker.ts';
import { toWire } from './worker.ts';

const port = parentPort;
if (!port) throw new Error('worker-entry.ts must run in a worker thread (see worker.ts)');

let runner: StepRunner | undefined;
let queue: Promise<void> = Promise.resolve();

async function handle(req: WorkerRequest): Promise<{ result: unknown; transfer: ArrayBuffer[] }> {
  if (req.type === 'init') {
    runner = await StepRunner.create(req.plan, req.params, req.frozen, req.session);
    return { result: null, transfer: [] };
  }
  if (!runner) throw new Error(`'${req.type}' before 'init'`);
  switch (req.type) {
    case 'step': {
      const r = await runner.step(req.feeds, req.opts);
      const transfer = [
        ...new Set(r.microOutputs.flatMap((o) => Object.values(o).map((t) => t.data.buffer))),
      ] as ArrayBuffer[];
      return { result: r, transfer };
    }
    case 'state': {
      const s = await runner.state();
      return {
        result: s,
        transfer: [
          s.params.buffer,
          ...Object.values(s.slots).map((v) => v.buffer),
        ] as ArrayBuffer[],
      };
    }
    case 'params': {
      const flat = runner.params.flat.slice();
      return { result: flat, transfer: [flat.buffer as ArrayBuffer] };
    }
    case 'frozen': {
      const frozen = runner.params.frozen.map((f) => ({ ...f, data: f.data.slice() }));
      return { result: frozen, transfer: frozen.map((f) => f.data.buffer as ArrayBuffer) };
    }
    case 'load':
      await runner.load(req.state);
      return { result: null, transfer: [] };
    case 'dispose':
      await runner.release();
      runner = undefined;
      return { result: null, transfer: [] };
  }
}

port.on('message', (msg: WorkerRequest & { id: number }) => {
  // Requests run strictly in arrival order: a step never overlaps a state read.
  queue = queue.then(async () => {
    let reply: WorkerReply;
    let transfer: ArrayBuffer[] = [];
    try {
      const out = await handle(msg);
      transfer = out.transfer;
      reply = {
        id: msg.id,
        ok: true,
        result: out.result,
        stepCount: runner?.stepCount ?? 0,
        skippedCount: runner?.skippedCount ?? 0,
      };
    } catch (e) {
      reply = { id: msg.id, ok: false, error: toWire(e) };
    }
    port.postMessage(reply, transfer);
  });
});
