// The inference worker: loads the model (merging a PEFT adapter when given), then runs a loop
// that admits queued requests into a step-level batch decoder, decodes one token for every
// active sequence per step, turns tokens into text deltas (holding back partial characters and
// possible stop-string prefixes) and reports them to the main thread.
import { availableParallelism } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { tensor } from '../engine/runtime.ts';
import { type ActiveSequence, BatchDecoder } from '../models/batch-decoder.ts';
import { loadCheckpoint } from '../models/checkpoint.ts';
import { stableLength } from '../models/generate.ts';
import { CausalLM } from '../models/lm.ts';
import { loadPeftAdapter, mergeLora } from '../models/peft.ts';
import type { FromWorker, GenerateParams, TokenInfo, ToWorker } from './protocol.ts';

const port = parentPort!;
const {
  model: modelDir,
  adapter,
  maxBatch,
} = workerData as { model: string; adapter?: string; maxBatch: number };
const post = (m: FromWorker) => port.postMessage(m);

interface Pending {
  id: number;
  prompt: string;
  params: GenerateParams;
}
interface Running {
  id: number;
  row?: ActiveSequence;
  params: GenerateParams;
  promptTokens: number;
  text: string;
  emitted: number;
  tokens: number[];
  echo?: TokenInfo[];
  offset: number;
  pendingInfo: TokenInfo[];
}

async function main(): Promise<void> {
  const ckpt = await loadCheckpoint(modelDir);
  const tensors = adapter ? mergeLora(ckpt.tensors, await loadPeftAdapter(adapter)) : ckpt.tensors;
  const lm = new CausalLM(ckpt.spec, tensors, ckpt.tokenizer);
  // Leave a core to the HTTP thread, and let idle ORT threads sleep instead of spinning, so the
  // event loop stays responsive while the model computes.
  lm.sessionOptions = {
    threads: Math.max(1, availableParallelism() - 1),
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
  const tok = lm.tokenizer;
  if (!tok) throw new Error(`${modelDir} has no tokenizer`);
  const eosIds = new Set<number>();
  if (tok.eos) eosIds.add(tok.eos.id);
  const eos = lm.spec.eosTokenId;
  if (typeof eos === 'number') eosIds.add(eos);
  else if (Array.isArray(eos)) for (const e of eos) eosIds.add(e);
  const dec = new BatchDecoder(lm, maxBatch);
  await lm.decodeSession();
  post({
    type: 'ready',
    modelType: lm.spec.modelType,
    maxPositions: lm.spec.maxPositions,
    chatTemplate: tok.chatTemplate,
    bos: tok.bos?.token ?? null,
    eos: tok.eos?.token ?? null,
  });

  const queue: Pending[] = [];
  const running = new Map<number, Running>();
  const cancelled = new Set<number>();
  let wake: (() => void) | undefined;
  port.on('message', (m: ToWorker) => {
    if (m.type === 'generate') queue.push({ id: m.id, prompt: m.prompt, params: m.params });
    else {
      const i = queue.findIndex((q) => q.id === m.id);
      if (i >= 0) queue.splice(i, 1);
      const r = running.get(m.id);
      if (r?.row) dec.cancel(r.row);
      else cancelled.add(m.id);
    }
    wake?.();
  });

  const tokenText = (id: number) => tok.decode([id], { skipSpecialTokens: false });
  const topOf = (top: { token: number; logprob: number }[] | undefined) =>
    top?.map((t) => ({ text: tokenText(t.token), logprob: t.logprob }));

  /** Prompt tokens with their log-probs (the first has none), for echo. */
  async function echoOf(ids: number[], withTop: boolean): Promise<TokenInfo[]> {
    const T = ids.length - 1;
    const out: TokenInfo[] = [{ text: tokenText(ids[0]!), logprob: null, top: null, offset: 0 }];
    if (T <= 0) return out;
    const bias = new Float32Array(T * T).map((_, k) => (k % T <= Math.floor(k / T) ? 0 : -1e9));
    const r = await (await lm.scoreSession()).run({
      ...lm.weightFeeds(),
      input_ids: tensor('int64', [1, T], BigInt64Array.from(ids.slice(0, -1).map(BigInt))),
      position_ids: tensor(
        'int64',
        [1, T],
        BigInt64Array.from({ length: T }, (_, i) => BigInt(i)),
      ),
      targets: tensor('int64', [1, T], BigInt64Array.from(ids.slice(1).map(BigInt))),
      attn_bias: tensor('float32', [1, 1, T, T], bias),
    });
    const lp = r.logprobs!.data as Float32Array;
    const am = r.argmax!.data as BigInt64Array;
    const mx = r.max_logprob!.data as Float32Array;
    let offset = out[0]!.text.length;
    for (let t = 0; t < T; t++) {
      const text = tokenText(ids[t + 1]!);
      const top = [{ text: tokenText(Number(am[t])), logprob: mx[t]! }];
      if (Number(am[t]) !== ids[t + 1]) top.push({ text, logprob: lp[t]! });
      out.push({ text, logprob: lp[t]!, top: withTop ? top : null, offset });
      offset += text.length;
    }
    return out;
  }

  function flush(r: Running, final: boolean): void {
    const stable = final ? r.text.length : stableLength(r.text, r.params.stop);
    if (stable > r.emitted || (final && r.pendingInfo.length > 0)) {
      post({
        type: 'delta',
        id: r.id,
        text: r.text.slice(r.emitted, Math.max(stable, r.emitted)),
        tokens: r.pendingInfo,
      });
      r.emitted = Math.max(stable, r.emitted);
      r.pendingInfo = [];
    }
  }

  function finish(r: Running, reason: 'stop' | 'length' | 'cancelled'): void {
    flush(r, true);
    running.delete(r.id);
    post({
      type: 'done',
      id: r.id,
      finish: reason,
      promptTokens: r.promptTokens,
      completionTokens: r.tokens.length,
      ...(r.echo ? { echo: r.echo } : {}),
    });
  }

  async function admit(p: Pending): Promise<void> {
    const ids = tok!.encode(p.prompt);
    if (ids.length === 0) {
      post({ type: 'error', id: p.id, status: 400, message: 'the prompt is empty' });
      return;
    }
    if (ids.length + p.params.maxTokens > lm.spec.maxPositions) {
      post({
        type: 'error',
        id: p.id,
        status: 400,
        message: `This model's maximum context length is ${lm.spec.maxPositions} tokens; the prompt has ${ids.length} and max_tokens is ${p.params.maxTokens}.`,
      });
      return;
    }
    const r: Running = {
      id: p.id,
      params: p.params,
      promptTokens: ids.length,
      text: '',
      emitted: 0,
      tokens: [],
      offset: 0,
      pendingInfo: [],
    };
    running.set(p.id, r);
    if (p.params.echo) {
      r.echo = await echoOf(ids, p.params.logprobs > 0);
      r.offset = r.echo.reduce((s, e) => s + e.text.length, 0);
    }
    if (p.params.maxTokens === 0 || cancelled.has(p.id)) {
      finish(r, cancelled.has(p.id) ? 'cancelled' : 'length');
      cancelled.delete(p.id);
      return;
    }
    r.row = await dec.add(
      ids,
      {
        maxNewTokens: p.params.maxTokens,
        stopTokenIds: eosIds,
        seed: p.params.seed,
        temperature: p.params.temperature,
        top_p: p.params.topP,
        top_k: p.params.topK,
        repetition_penalty: p.params.repetitionPenalty,
        ...(p.params.logprobs > 0 ? { topLogprobs: p.params.logprobs } : {}),
      },
      (t) => {
        r.tokens.push(t.token);
        const text = tokenText(t.token);
        if (p.params.logprobs >= 0)
          r.pendingInfo.push({
            text,
            logprob: t.logprob,
            top: topOf(t.top) ?? null,
            offset: r.offset,
          });
        r.offset += text.length;
        r.text = tok!.decode(r.tokens, { skipSpecialTokens: false });
        let cut = -1;
        for (const s of p.params.stop) {
          const i = s === '' ? -1 : r.text.indexOf(s);
          if (i >= 0 && (cut < 0 || i < cut)) cut = i;
        }
        if (cut >= 0) r.text = r.text.slice(0, cut);
        flush(r, false);
        return cut >= 0;
      },
    );
  }

  for (;;) {
    while (queue.length > 0 && !dec.full) await admit(queue.shift()!);
    if (dec.size === 0) {
      if (queue.length === 0) await new Promise<void>((res) => (wake = res));
      wake = undefined;
      continue;
    }
    for (const row of await dec.step()) {
      const r = [...running.values()].find((x) => x.row === row);
      if (r) finish(r, row.finish);
    }
  }
}

main().catch((e: unknown) => post({ type: 'fatal', message: (e as Error).stack ?? String(e) }));
