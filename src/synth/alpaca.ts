// Alpaca-style generation (Taori et al. 2023): each request shows 3 seed tasks with their
// instance and asks the model to continue a numbered list of ~20 tasks, writing instruction,
// input and output in one pass. Parsed items pass Alpaca's filters (length, an 18-word
// blacklist, starting characters, ROUGE-L > 0.7 against the pool). Resumable like Self-Instruct.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { parseConfig } from '../data/config.ts';
import { RougeLIndex } from '../data/rouge.ts';
import { ConfigError } from '../util/errors.ts';
import { writeJsonl } from '../util/jsonl.ts';
import { hashString, Rng } from '../util/rng.ts';
import type { LlmClient } from './client.ts';
import {
  ALPACA_BLACKLIST,
  checkInstruction,
  collapseWhitespace,
  type RejectReason,
} from './filters.ts';
import { parseAlpacaResponse } from './parse.ts';
import { encodeAlpacaPrompt } from './prompts.ts';
import { RunLog } from './run-state.ts';
import { loadSeedTasks } from './seed-tasks.ts';
import type { SynthProgress } from './self-instruct.ts';
import { callText, DecodingParams } from './text-call.ts';

export const AlpacaConfig = z.strictObject({
  seed_tasks: z.string(),
  out_dir: z.string(),
  /** Number of instruction records to generate. */
  target: z.number().int().positive(),
  seed: z.number().int().default(42),
  api: z.enum(['completions', 'chat']).default('completions'),
  /** Seed tasks shown per prompt. @default 3 */
  num_prompt_instructions: z.number().int().min(1).default(3),
  request_batch_size: z.number().int().positive().default(5),
  similarity_threshold: z.number().min(0).max(1).default(0.7),
  stall_rounds: z.number().int().positive().default(20),
  decoding: DecodingParams.prefault({
    max_tokens: 3072,
    temperature: 1,
    top_p: 1,
    stop: ['\n20', '20.', '20.'],
  }),
});
export type AlpacaConfig = z.input<typeof AlpacaConfig>;

interface AlpacaCandidate {
  instruction: string;
  input: string;
  output: string;
  kept: boolean;
  reason?: RejectReason;
  score?: number;
}
interface AlpacaEntry {
  round: number;
  idx: number;
  finish_reason: string | null;
  unparseable: number;
  candidates: AlpacaCandidate[];
}

export interface AlpacaReport {
  records: number;
  rejected: Record<string, number>;
  rounds: number;
  stalled: boolean;
  usage: ReturnType<LlmClient['usage']>;
  out_dir: string;
}

export function parseAlpacaConfig(raw: unknown, file?: string): z.infer<typeof AlpacaConfig> {
  return parseConfig(AlpacaConfig, raw, { file });
}

/** Runs (or resumes) Alpaca-style generation and writes data.jsonl of {instruction, input, output}. */
export async function runAlpaca(
  rawConfig: AlpacaConfig,
  deps: { client: LlmClient; onProgress?: (p: SynthProgress) => void },
): Promise<AlpacaReport> {
  const cfg = parseAlpacaConfig(rawConfig);
  const { client } = deps;
  const seeds = await loadSeedTasks(cfg.seed_tasks);
  if (seeds.length < cfg.num_prompt_instructions) {
    throw new ConfigError(`only ${seeds.length} seed tasks`, { field: 'num_prompt_instructions' });
  }
  const rejected: Record<string, number> = {};
  const bump = (k: string, n = 1): void => {
    rejected[k] = (rejected[k] ?? 0) + n;
  };
  const index = new RougeLIndex({ threshold: cfg.similarity_threshold });
  for (const s of seeds) index.add(s.instruction);
  const kept: AlpacaCandidate[] = [];
  const log = RunLog.open<AlpacaEntry>(join(cfg.out_dir, 'generations.jsonl'));
  let round = 0;
  let nextIdx = 0;
  for (const e of log.entries) {
    for (const c of e.candidates) {
      if (c.kept) {
        kept.push(c);
        index.add(c.instruction);
      } else bump(c.reason ?? 'unknown');
    }
    if (e.unparseable > 0) bump('unparseable', e.unparseable);
    round = e.round;
    nextIdx = e.idx + 1;
  }
  if (nextIdx >= cfg.request_batch_size) {
    round++;
    nextIdx = 0;
  }
  const progress = (): void =>
    deps.onProgress?.({
      stage: 'instructions',
      kept: kept.length,
      target: cfg.target,
      rejected: { ...rejected },
      usage: client.usage(),
    });
  progress();

  let stall = 0;
  let stalled = false;
  while (kept.length < cfg.target) {
    const idxs = Array.from({ length: cfg.request_batch_size - nextIdx }, (_, k) => nextIdx + k);
    const responses = await Promise.all(
      idxs.map((i) => {
        // Alpaca samples only seed tasks for its prompts (machine tasks never enter them).
        const rng = new Rng(`${cfg.seed}/alpaca/${round}/${i}`);
        const shown = rng
          .sample(seeds, cfg.num_prompt_instructions)
          .map((s) => ({ instruction: s.instruction, ...s.instances[0]! }));
        return callText(
          client,
          cfg.api,
          encodeAlpacaPrompt(shown),
          cfg.decoding,
          hashString(`${cfg.seed}/a/${round}/${i}`) & 0x7fffffff,
          'decoding',
        );
      }),
    );
    let keptThisRound = 0;
    idxs.forEach((i, k) => {
      const res = responses[k]!;
      const parsed = parseAlpacaResponse(
        res.text,
        res.finishReason,
        cfg.num_prompt_instructions + 1,
      );
      if (parsed.unparseable > 0) bump('unparseable', parsed.unparseable);
      const candidates: AlpacaCandidate[] = [];
      for (const item of parsed.items) {
        const inst = collapseWhitespace(item.instruction);
        const reason = checkInstruction(inst, { blacklist: ALPACA_BLACKLIST });
        const c: AlpacaCandidate = {
          instruction: inst,
          input: item.input,
          output: item.output,
          kept: false,
        };
        if (reason) {
          c.reason = reason;
        } else {
          const best = index.best(inst);
          c.score = best.score;
          if (best.score > cfg.similarity_threshold) c.reason = 'too_similar';
          else {
            c.kept = true;
            index.add(inst);
            kept.push(c);
            keptThisRound++;
          }
        }
        if (c.reason) bump(c.reason);
        candidates.push(c);
      }
      log.append({
        round,
        idx: i,
        finish_reason: res.finishReason,
        unparseable: parsed.unparseable,
        candidates,
      });
      progress();
    });
    stall = keptThisRound === 0 ? stall + 1 : 0;
    round++;
    nextIdx = 0;
    if (stall >= cfg.stall_rounds) {
      stalled = true;
      break;
    }
  }
  log.close();
  const records = kept
    .slice(0, cfg.target)
    .map((c) => ({ instruction: c.instruction, input: c.input, output: c.output }));
  await writeJsonl(join(cfg.out_dir, 'data.jsonl'), records);
  const report: AlpacaReport = {
    records: records.length,
    rejected,
    rounds: round,
    stalled,
    usage: client.usage(),
    out_dir: cfg.out_dir,
  };
  writeFileSync(join(cfg.out_dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  deps.onProgress?.({
    stage: 'done',
    kept: records.length,
    target: cfg.target,
    rejected: { ...rejected },
    usage: client.usage(),
  });
  return report;
}
