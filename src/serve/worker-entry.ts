// The inference worker: loads the model (merging a PEFT adapter when given), then runs the
// library's step-level Decoder (the one generate() uses): requests join the running batch
// between steps, each step's token events become text deltas (the decoder's TextStream holds
// back partial characters and possible stop-string prefixes) reported to the main thread.
// A cancel is honoured wherever the request is: queued here, being scored for echo, waiting in
// the decoder, or inside a prefill or decode run.
import { availableParallelism } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { loadCheckpoint } from '../models/checkpoint.ts';
import { Decoder, eosIds, type Sequence, type TokenEvent } from '../models/decoding.ts';
import { CausalLM } from '../models/lm.ts';
import { loadPeftAdapter, mergeLora } from '../models/peft.ts';
import { scoreSequences } from '../models/scoring.ts';
import type { CountLimits, FromWorker, GenerateParams, TokenInfo, ToWorker } from './protocol.ts';

const port = parentPort!;
const {
  model: modelDir,
  adapter,
  maxBatch,
} = workerData as { model: string; adapter?: string; maxBatch: number };
const post = (m: FromWorker) => port.postMessage(m);

interface Request {
  id: number;
  prompt: string;
  params: GenerateParams;
  cancelled: boolean;
  seq?: Sequence;
  promptTokens: number;
  echo?: TokenInfo[];
  /** Text offset of the next generated token (after the echoed prompt). */
  offset: number;
  /** Token infos not yet sent (sent with the next text delta, or at the end). */
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
  const stopIds = eosIds(lm);
  const dec = new Decoder(lm, { maxBatch });
  await lm.decodeSession();
  post({
    type: 'ready',
    modelType: lm.spec.modelType,
    maxPositions: lm.spec.maxPositions,
    chatTemplate: tok.chatTemplate,
    bos: tok.bos?.token ?? null,
    eos: tok.eos?.token ?? null,
  });

  const queue: Request[] = [];
  const byId = new Map<number, Request>();
  const bySeq = new Map<number, Request>();
  let wake: (() => void) | undefined;
  // No token covers more characters than the longest token string (byte-level BPE maps a byte
  // to a character; SentencePiece's byte-fallback tokens are longer than the byte they stand
  // for), so a text has at least length / maxTokenChars tokens. The factor 4 leaves room for
  // normalizers that shorten the text before it is split (NFKC composing characters).
  let maxTokenChars = 1;
  const vocabSize = tok.vocabSize;
  for (let i = 0; i < vocabSize; i++)
    maxTokenChars = Math.max(maxTokenChars, tok.idToToken(i)?.length ?? 0);
  const charsPerTokenBound = 4 * maxTokenChars;

  /** Token counts with the limits of CountLimits: a refused request is not tokenized whole. */
  function count(prompts: string[], limits: CountLimits): { tokens: number[]; atLeast: boolean } {
    const tokens: number[] = [];
    let sum = 0;
    for (const p of prompts) {
      const lower = Math.floor(p.length / charsPerTokenBound);
      if (lower > limits.perPrompt || sum + lower > limits.total) {
        tokens.push(lower);
        return { tokens, atLeast: true };
      }
      const k = tok!.encode(p).length;
      tokens.push(k);
      sum += k;
      if (k === 0 || k > limits.perPrompt || sum > limits.total) break;
    }
    return { tokens, atLeast: false };
  }

  port.on('message', (m: ToWorker) => {
    if (m.type === 'count') {
      // Answered at once, between decode steps: counting is not a job and does not queue.
      post({ type: 'counted', id: m.id, ...count(m.prompts, m.limits) });
      return;
    }
    if (m.type === 'generate') {
      const r: Request = {
        id: m.id,
        prompt: m.prompt,
        params: m.params,
        cancelled: false,
        promptTokens: 0,
        offset: 0,
        pendingInfo: [],
      };
      byId.set(m.id, r);
      queue.push(r);
    } else {
      const r = byId.get(m.id);
      if (r) {
        r.cancelled = true;
        if (r.seq) dec.cancel(r.seq);
      }
    }
    wake?.();
  });

  const tokenText = (id: number) => tok.decode([id], { skipSpecialTokens: false });
  const topOf = (top: { token: number; logprob: number }[] | undefined) =>
    top?.map((t) => ({ text: tokenText(t.token), logprob: t.logprob }));

  /** Prompt tokens with their log-probs (the first has none), for echo. */
  async function echoOf(ids: number[], k: number): Promise<TokenInfo[]> {
    const out: TokenInfo[] = [{ text: tokenText(ids[0]!), logprob: null, top: null, offset: 0 }];
    if (ids.length < 2) return out;
    const [s] = await scoreSequences(lm, [ids], { topK: Math.max(0, k) });
    let offset = out[0]!.text.length;
    s!.logprobs.forEach((lp, t) => {
      const text = tokenText(ids[t + 1]!);
      // As OpenAI's legacy completions: the k most likely, plus the prompt's own token.
      const alts = s!.top?.[t];
      const top = alts?.map((a) => ({ text: tokenText(a.token), logprob: a.logprob }));
      if (top && !alts!.some((a) => a.token === ids[t + 1])) top.push({ text, logprob: lp });
      out.push({ text, logprob: lp, top: k > 0 ? top! : null, offset });
      offset += text.length;
    });
    return out;
  }

  function send(r: Request, text: string): void {
    if (text === '' && r.pendingInfo.length === 0) return;
    post({ type: 'delta', id: r.id, text, tokens: r.pendingInfo });
    r.pendingInfo = [];
  }

  function finish(r: Request, reason: 'stop' | 'length' | 'cancelled'): void {
    byId.delete(r.id);
    if (r.seq) bySeq.delete(r.seq.id);
    post({
      type: 'done',
      id: r.id,
      finish: reason,
      promptTokens: r.promptTokens,
      completionTokens: r.seq?.tokens.length ?? 0,
      ...(r.echo ? { echo: r.echo } : {}),
    });
  }

  function fail(r: Request, message: string): void {
    byId.delete(r.id);
    post({ type: 'error', id: r.id, status: 400, message });
  }

  /** Tokenize, check, score the prompt for echo, and hand the request to the decoder. */
  async function admit(r: Request): Promise<void> {
    if (r.cancelled) return finish(r, 'cancelled');
    const p = r.params;
    const ids = tok!.encode(r.prompt);
    if (ids.length === 0) return fail(r, 'the prompt is empty');
    if (ids.length + p.maxTokens > lm.spec.maxPositions)
      return fail(
        r,
        `This model's maximum context length is ${lm.spec.maxPositions} tokens; the prompt has ${ids.length} and max_tokens is ${p.maxTokens}.`,
      );
    r.promptTokens = ids.length;
    if (p.echo) {
      r.echo = await echoOf(ids, p.logprobs);
      r.offset = r.echo.reduce((s, e) => s + e.text.length, 0);
    }
    // A cancel that came in while the prompt was being scored.
    if (r.cancelled) return finish(r, 'cancelled');
    try {
      r.seq = dec.add({
        prompt: ids,
        max_new_tokens: p.maxTokens,
        stop: p.stop,
        stop_token_ids: stopIds,
        seed: p.seed,
        temperature: p.temperature,
        top_p: p.topP,
        top_k: p.topK,
        repetition_penalty: p.repetitionPenalty,
        presence_penalty: p.presencePenalty,
        frequency_penalty: p.frequencyPenalty,
        logit_bias: p.logitBias,
        top_logprobs: Math.max(0, p.logprobs),
      });
    } catch (e) {
      return fail(r, (e as Error).message);
    }
    bySeq.set(r.seq.id, r);
  }

  function onEvent(ev: TokenEvent): void {
    const r = bySeq.get(ev.seq.id);
    if (!r) return;
    if (ev.token >= 0 && r.params.logprobs >= 0) {
      const text = tokenText(ev.token);
      r.pendingInfo.push({
        text,
        logprob: ev.logprob,
        top: topOf(ev.top) ?? null,
        offset: r.offset,
      });
      r.offset += text.length;
    } else if (ev.token >= 0) r.offset += tokenText(ev.token).length;
    if (ev.text !== '' || ev.finishReason !== null) send(r, ev.text);
    if (ev.finishReason !== null) finish(r, ev.finishReason);
  }

  for (;;) {
    while (queue.length > 0) await admit(queue.shift()!);
    if (!dec.busy) {
      await new Promise<void>((res) => {
        wake = res;
        if (queue.length > 0) res();
      });
      wake = undefined;
      continue;
    }
    for (const ev of await dec.step()) onEvent(ev);
  }
}

main().catch((e: unknown) => post({ type: 'fatal', message: (e as Error).stack ?? String(e) }));
