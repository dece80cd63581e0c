// Learning-rate schedules with the semantics of HF transformers' optimization.py
// (get_constant_schedule[_with_warmup], get_linear_schedule_with_warmup,
// get_cosine_schedule_with_warmup): a multiplier of the base learning rate per optimizer step,
// fed to the step graph as a scalar input. Choosing the total step count is left to src/train.
import { z } from 'zod';
import { ConfigError } from '../util/errors.ts';

/** Schedule names as HF's `lr_scheduler_type` spells them. */
export const ScheduleType = z.enum(['constant', 'constant_with_warmup', 'linear', 'cosine']);
export type ScheduleType = z.infer<typeof ScheduleType>;

/**
 * A learning-rate schedule. Warmup is given either in steps or as a fraction of the total
 * (HF: `warmup_steps = ceil(total_steps * warmup_ratio)`); giving both is an error.
 * @example { type: 'cosine', warmup_ratio: 0.03 }
 */
export const ScheduleConfig = z.strictObject({
  /** @default 'constant' */
  type: ScheduleType.default('constant'),
  /** Linear warmup from 0 over this many optimizer steps. @default 0 */
  warmup_steps: z.number().int().nonnegative().optional(),
  /** Warmup as a fraction of the total steps, in [0, 1]. */
  warmup_ratio: z.number().min(0).max(1).optional(),
  /** Cosine only: number of half-waves after warmup (HF default 0.5 = one decay to 0). */
  num_cycles: z.number().positive().optional(),
});
export type ScheduleConfig = z.input<typeof ScheduleConfig>;

/** A resolved schedule: the multiplier of the base learning rate at a 0-based optimizer step. */
export interface Schedule {
  readonly type: ScheduleType;
  readonly warmupSteps: number;
  /** Total optimizer steps (the decay horizon of linear and cosine). */
  readonly totalSteps: number | undefined;
  /** Multiplier in [0, 1] for the update made at `step` (0 for the very first step with warmup). */
  factor(step: number): number;
}

/**
 * Resolve `config` against the run length. `totalSteps` is required for linear and cosine and
 * for `warmup_ratio`; `field` prefixes the field names in errors (e.g. 'schedule').
 */
export function createSchedule(
  config: ScheduleConfig = {},
  totalSteps?: number,
  field = 'schedule',
): Schedule {
  const parsed = ScheduleConfig.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.join('.') ?? '';
    throw new ConfigError(issue?.message ?? 'invalid schedule', {
      field: path ? `${field}.${path}` : field,
    });
  }
  const c = parsed.data;
  if (totalSteps !== undefined && !(Number.isInteger(totalSteps) && totalSteps > 0))
    throw new ConfigError(`total steps must be a positive integer, got ${totalSteps}`, {
      field: `${field}.total_steps`,
    });
  if (c.warmup_steps !== undefined && c.warmup_ratio !== undefined)
    throw new ConfigError('give warmup_steps or warmup_ratio, not both', {
      field: `${field}.warmup_ratio`,
    });
  const needsTotal = c.type === 'linear' || c.type === 'cosine' || c.warmup_ratio !== undefined;
  if (needsTotal && totalSteps === undefined)
    throw new ConfigError(`the '${c.type}' schedule needs the total number of steps`, {
      field: `${field}.total_steps`,
    });
  if (c.num_cycles !== undefined && c.type !== 'cosine')
    throw new ConfigError('num_cycles applies only to the cosine schedule', {
      field: `${field}.num_cycles`,
    });
  const warmup =
    c.warmup_ratio !== undefined
      ? Math.ceil((totalSteps as number) * c.warmup_ratio)
      : (c.warmup_steps ?? 0);
  if (c.type === 'constant' && warmup > 0)
    throw new ConfigError(
      "the 'constant' schedule has no warmup",
      { field: `${field}.type` },
      { hint: "use 'constant_with_warmup'" },
    );
  const total = totalSteps ?? 0;
  const cycles = c.num_cycles ?? 0.5;
  const factor = (step: number): number => {
    if (!(Number.isInteger(step) && step >= 0))
      throw new RangeError(`schedule step must be a non-negative integer, got ${step}`);
    if (step < warmup) return step / Math.max(1, warmup);
    switch (c.type) {
      case 'constant':
      case 'constant_with_warmup':
        return 1;
      case 'linear':
        return Math.max(0, (total - step) / Math.max(1, total - warmup));
      case 'cosine': {
        const progress = (step - warmup) / Math.max(1, total - warmup);
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
      }
    }
  };
  return { type: c.type, warmupSteps: warmup, totalSteps, factor };
}
