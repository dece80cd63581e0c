// The training progress line: step / total, loss, tokens/s and ETA, as a cli-progress bar on a
// terminal and as a plain line every few seconds otherwise (logs, CI).
import { SingleBar } from 'cli-progress';
import { env } from '../util/env.ts';

export interface TrainProgress {
  update(step: number, v: { loss: number; tokensPerS: number }): void;
  stop(): void;
}

export function trainProgress(o: {
  total: number;
  start?: number;
  enabled?: boolean;
  label?: string;
}): TrainProgress {
  if (o.enabled === false) return { update() {}, stop() {} };
  const label = o.label ?? 'train';
  const plain = env.plainOutput || !process.stderr.isTTY;
  const t0 = performance.now();
  const start = o.start ?? 0;
  if (!plain) {
    const bar = new SingleBar({
      stream: process.stderr,
      format: `${label} [{bar}] {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted}`,
      hideCursor: true,
    });
    bar.start(o.total, start, { loss: '-', tps: '-' });
    return {
      update: (step, v) =>
        bar.update(step, { loss: v.loss.toFixed(4), tps: Math.round(v.tokensPerS) }),
      stop: () => bar.stop(),
    };
  }
  let last = 0;
  return {
    update(step, v) {
      const now = performance.now();
      if (now - last < 5000 && step !== o.total) return;
      last = now;
      const rate = (step - start) / Math.max(1e-3, (now - t0) / 1000);
      const eta = rate > 0 ? (o.total - step) / rate : 0;
      process.stderr.write(
        `${label}: step ${step}/${o.total} loss ${v.loss.toFixed(4)} ${Math.round(v.tokensPerS)} tok/s ETA ${eta.toFixed(0)}s\n`,
      );
    },
    stop() {},
  };
}
