// Self-Instruct (Wang et al. 2022, arXiv 2212.10560) as a resumable pipeline: bootstrap
// instructions from seed tasks (8 per prompt: 6 seed + 2 machine once there are machine ones),
// filter them (heuristics + ROUGE-L > 0.7 against the pool), identify classification tasks,
// generate instances (output-first for classification, input-first otherwise), filter instances,
// and write {instruction, input, output} records. Every stage appends its results to a JSONL log
// as they complete, so a killed run continues where it stopped.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { parseConfig } from '../data/config.ts';
import { RougeLIndex } from '../data/rouge.ts';
import { ConfigError } from '../util/errors.ts';
import { writeJsonl } from '../util/jsonl.ts';
import { hashString, Rng } from '../util/rng.ts';
import type { LlmClient } from './client.ts';
import type { UsageReport } from './cost.ts';
import {
  checkInstance,
  checkInstruction,
  dedupInstances,
  type Instance,
  type RejectReason,
  SELF_INSTRUCT_BLACKLIST,
} from './filters.ts';
import { parseInstances, parseInstructionList } from './parse.ts';
import {
  CLASSIFICATION_LIST_HEADER,
  encodeClassificationQuery,
  encodeInstancePrompt,
  encodeInstructionPrompt,
  INSTRUCTION_LIST_HEADER,
  parseClassificationAnswer,
} from './prompts.ts';
import { RunLog } from './run-state.ts';
import { loadSeedTasks } from './seed-tasks.ts';
import { callText, DecodingParams } from './text-call.ts';

export const SelfInstructConfig = z.strictObject({
  /** Seed tasks in Self-Instruct's JSONL format. */
  seed_tasks: z.string(),
  /** Output directory: logs, data.jsonl, report.json. */
  out_dir: z.string(),
  /** Number of machine instructions to generate. */
  target: z.number().int().positive(),
  seed: z.number().int().default(42),
  api: z.enum(['completions', 'chat']).default('completions'),
  /** Instructions shown per prompt. @default 8 */
  num_prompt_instructions: z.number().int().min(1).default(8),
  /** How many of them come from the machine pool once it is non-empty. @default 2 */
  machine_instructions_in_prompt: z.number().int().min(0).default(2),
  /** Prompts sent per round. @default 5 */
  request_batch_size: z.number().int().positive().default(5),
  /** Reject a candidate whose ROUGE-L F against any pool entry is above this. @default 0.7 */
  similarity_threshold: z.number().min(0).max(1).default(0.7),
  capitalize: z.enum(['python', 'first', 'none']).default('first'),
  /** Use only classification seed tasks (the paper's variant for classification data). */
  classification_seeds_only: z.boolean().default(false),
  generate_instances: z.boolean().default(true),
  /** Instances kept per task (sampled with the seed). @default 5 */
  max_instances_per_task: z.number().int().positive().default(5),
  /** Stop when this many rounds in a row keep nothing. @default 20 */
  stall_rounds: z.number().int().positive().default(20),
  decoding: z
    .strictObject({
      instructions: DecodingParams.prefault({
        max_tokens: 1024,
        temperature: 0.7,
        top_p: 0.5,
        presence_penalty: 2,
        stop: ['\n\n', '\n16', '16.', '16 .'],
      }),
      classification: DecodingParams.prefault({
        max_tokens: 3,
        temperature: 0,
        stop: ['\n', 'Task'],
      }),
      instances: DecodingParams.prefault({
        max_tokens: 350,
        temperature: 0,
        presence_penalty: 1.5,
        stop: ['Example 6', 'Task:'],
      }),
    })
    .prefault({}),
});
export type SelfInstructConfig = z.input<typeof SelfInstructConfig>;

export function parseSelfInstructConfig(
  raw: unknown,
  file?: string,
): z.infer<typeof SelfInstructConfig> {
  return parseConfig(SelfInstructConfig, raw, { file });
}

interface Candidate {
  instruction: string;
  kept: boolean;
  reason?: RejectReason;
  score?: number;
  most_similar?: string;
}
interface RequestEntry {
  round: number;
  idx: number;
  /** Machine-pool size at the start of the round (prompts sample from that prefix). */
  pool_at_round_start: number;
  finish_reason: string | null;
  candidates: Candidate[];
}
interface ClassificationEntry {
  instruction: string;
  is_classification: boolean;
  raw: string;
}
interface InstanceEntry {
  instruction: string;
  is_classification: boolean;
  instances: Instance[];
  rejected: Record<string, number>;
  finish_reason: string | null;
}

export interface SynthProgress {
  stage: 'instructions' | 'classification' | 'instances' | 'done';
  /** Items done in this stage (instructions kept; instructions classified / given instances). */
  kept: number;
  /** What the stage aims for: the run's target, or the number of instructions to process. */
  target: number;
  rejected: Record<string, number>;
  usage: UsageReport;
}

export interface SelfInstructReport {
  instructions: number;
  classification_tasks: number;
  instances: number;
  records: number;
  rejected_instructions: Record<string, number>;
  rejected_instances: Record<string, number>;
  rounds: number;
  stalled: boolean;
  usage: UsageReport;
  out_dir: string;
}

const bump = (m: Record<string, number>, k: string, n = 1): void => {
  m[k] = (m[k] ?? 0) + n;
};

/** Runs (or resumes) Self-Instruct. Re-running with the same config continues the same run. */
export async function runSelfInstruct(
  rawConfig: SelfInstructConfig,
  deps: { client: LlmClient; onProgress?: (p: SynthProgress) => void },
): Promise<SelfInstructReport> {
  const cfg = parseSelfInstructConfig(rawConfig);
  const { client } = deps;
  const seeds = await loadSeedTasks(cfg.seed_tasks);
  const promptSeeds = (
    cfg.classification_seeds_only ? seeds.filter((s) => s.is_classification) : seeds
  ).map((s) => s.instruction);
  if (promptSeeds.length < cfg.num_prompt_instructions) {
    throw new ConfigError(
      `${promptSeeds.length} seed instructions but num_prompt_instructions is ${cfg.num_prompt_instructions}`,
      { field: 'num_prompt_instructions' },
    );
  }
  const header = cfg.classification_seeds_only
    ? CLASSIFICATION_LIST_HEADER
    : INSTRUCTION_LIST_HEADER;
  const rejected: Record<string, number> = {};
  const progress = (stage: SynthProgress['stage'], kept: number, target = cfg.target): void =>
    deps.onProgress?.({
      stage,
      kept,
      target,
      rejected: { ...rejected },
      usage: client.usage(),
    });

  // ---- Stage 1: instructions -----------------------------------------------------------------
  const index = new RougeLIndex({ threshold: cfg.similarity_threshold });
  const pool: string[] = [];
  for (const s of seeds) {
    pool.push(s.instruction);
    index.add(s.instruction);
  }
  const machine: string[] = [];
  const log = RunLog.open<RequestEntry>(join(cfg.out_dir, 'instructions.jsonl'));
  let round = 0;
  let nextIdx = 0;
  let poolAtRoundStart = 0;
  let stall = 0;
  let keptThisRound = 0;
  for (const e of log.entries) {
    for (const c of e.candidates) {
      if (c.kept) {
        machine.push(c.instruction);
        index.add(c.instruction);
      } else bump(rejected, c.reason ?? 'unknown');
    }
    round = e.round;
    nextIdx = e.idx + 1;
    poolAtRoundStart = e.pool_at_round_start;
  }
  if (nextIdx >= cfg.request_batch_size) {
    round++;
    nextIdx = 0;
    poolAtRoundStart = machine.length;
  } else if (log.entries.length === 0) {
    poolAtRoundStart = 0;
  }
  progress('instructions', machine.length);

  let stalled = false;
  while (machine.length < cfg.target) {
    const visible = machine.slice(0, poolAtRoundStart);
    const idxs = Array.from({ length: cfg.request_batch_size - nextIdx }, (_, k) => nextIdx + k);
    const responses = await Promise.all(
      idxs.map((i) => {
        const rng = new Rng(`${cfg.seed}/instructions/${round}/${i}`);
        const m = Math.min(cfg.machine_instructions_in_prompt, visible.length);
        const shown = rng.shuffle([
          ...rng.sample(visible, m),
          ...rng.sample(promptSeeds, cfg.num_prompt_instructions - m),
        ]);
        const prompt = encodeInstructionPrompt(shown, header);
        return callText(
          client,
          cfg.api,
          prompt,
          cfg.decoding.instructions,
          hashString(`${cfg.seed}/${round}/${i}`) & 0x7fffffff,
          'decoding.instructions',
        );
      }),
    );
    keptThisRound = 0;
    idxs.forEach((i, k) => {
      const res = responses[k]!;
      const parsed = parseInstructionList(res.text, res.finishReason, cfg.capitalize);
      const candidates: Candidate[] = [];
      if (parsed.truncated) {
        candidates.push({ instruction: '', kept: false, reason: 'truncated_response' });
        bump(rejected, 'truncated_response');
      }
      for (const inst of parsed.instructions) {
        const reason = checkInstruction(inst, { blacklist: SELF_INSTRUCT_BLACKLIST });
        if (reason) {
          candidates.push({ instruction: inst, kept: false, reason });
          bump(rejected, reason);
          continue;
        }
        const best = index.best(inst);
        if (best.score > cfg.similarity_threshold) {
          candidates.push({
            instruction: inst,
            kept: false,
            reason: 'too_similar',
            score: best.score,
            most_similar: indexText(best.index),
          });
          bump(rejected, 'too_similar');
          continue;
        }
        index.add(inst);
        machine.push(inst);
        keptThisRound++;
        candidates.push({
          instruction: inst,
          kept: true,
          score: best.score,
          most_similar: indexText(best.index),
        });
      }
      log.append({
        round,
        idx: i,
        pool_at_round_start: poolAtRoundStart,
        finish_reason: res.finishReason,
        candidates,
      });
      progress('instructions', machine.length);
    });
    stall = keptThisRound === 0 ? stall + 1 : 0;
    round++;
    nextIdx = 0;
    poolAtRoundStart = machine.length;
    if (stall >= cfg.stall_rounds) {
      stalled = true;
      break;
    }
  }
  log.close();

  function indexText(i: number): string | undefined {
    if (i < 0) return undefined;
    return i < pool.length ? pool[i] : machine[i - pool.length];
  }

  const instructions = machine.slice(0, cfg.target);
  const report: SelfInstructReport = {
    instructions: instructions.length,
    classification_tasks: 0,
    instances: 0,
    records: 0,
    rejected_instructions: rejected,
    rejected_instances: {},
    rounds: round,
    stalled,
    usage: client.usage(),
    out_dir: cfg.out_dir,
  };

  // ---- Stage 2: classification identification ------------------------------------------------
  const clfLog = RunLog.open<ClassificationEntry>(join(cfg.out_dir, 'classification.jsonl'));
  const isClf = new Map(clfLog.entries.map((e) => [e.instruction, e.is_classification]));
  progress('classification', isClf.size, instructions.length);
  await Promise.all(
    instructions
      .filter((inst) => !isClf.has(inst))
      .map(async (inst) => {
        const res = await callText(
          client,
          cfg.api,
          encodeClassificationQuery(inst),
          cfg.decoding.classification,
          0,
          'decoding.classification',
        );
        const yes = parseClassificationAnswer(res.text);
        if (!isClf.has(inst)) {
          isClf.set(inst, yes);
          clfLog.append({ instruction: inst, is_classification: yes, raw: res.text });
        }
        progress('classification', isClf.size, instructions.length);
      }),
  );
  clfLog.close();
  report.classification_tasks = instructions.filter((i) => isClf.get(i)).length;

  // ---- Stage 3: instances ---------------------------------------------------------------------
  const records: { instruction: string; input: string; output: string }[] = [];
  if (cfg.generate_instances) {
    const instLog = RunLog.open<InstanceEntry>(join(cfg.out_dir, 'instances.jsonl'));
    const done = new Map(instLog.entries.map((e) => [e.instruction, e]));
    progress('instances', done.size, instructions.length);
    await Promise.all(
      instructions
        .filter((inst) => !done.has(inst))
        .map(async (inst) => {
          const clf = isClf.get(inst) ?? false;
          const params = {
            ...cfg.decoding.instances,
            max_tokens: clf
              ? Math.min(300, cfg.decoding.instances.max_tokens)
              : cfg.decoding.instances.max_tokens,
          };
          const res = await callText(
            client,
            cfg.api,
            encodeInstancePrompt(inst, clf),
            params,
            0,
            'decoding.instances',
          );
          const parsed = parseInstances(res.text, clf, res.finishReason);
          const bad: Record<string, number> = {};
          const good = parsed.filter((x) => {
            const why = checkInstance(x);
            if (why) bump(bad, why);
            return !why;
          });
          const { kept, conflicting } = dedupInstances(good);
          if (conflicting) bump(bad, 'conflicting_outputs', good.length);
          if (parsed.length === 0) bump(bad, 'no_instances');
          if (!done.has(inst)) {
            const entry = {
              instruction: inst,
              is_classification: clf,
              instances: kept,
              rejected: bad,
              finish_reason: res.finishReason,
            };
            done.set(inst, entry);
            instLog.append(entry);
          }
          progress('instances', done.size, instructions.length);
        }),
    );
    instLog.close();
    for (const inst of instructions) {
      const e = done.get(inst)!;
      for (const [k, n] of Object.entries(e.rejected)) bump(report.rejected_instances, k, n);
      report.instances += e.instances.length;
      const rng = new Rng(`${cfg.seed}/sample/${inst}`);
      const chosen =
        e.instances.length > cfg.max_instances_per_task
          ? rng.sample(e.instances, cfg.max_instances_per_task)
          : e.instances;
      for (const x of chosen) records.push({ instruction: inst, input: x.input, output: x.output });
    }
  }
  report.records = records.length;
  report.usage = client.usage();
  await writeJsonl(join(cfg.out_dir, 'data.jsonl'), records);
  writeFileSync(join(cfg.out_dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  progress('done', instructions.length);
  return report;
}
