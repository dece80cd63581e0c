// LR schedules against values worked out by hand from HF transformers' formulas
// (get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup, constant_with_warmup).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSchedule } from '../../src/engine/schedule.ts';
import { ConfigError } from '../../src/util/errors.ts';

const near = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

test('constant is 1 at every step', () => {
  const s = createSchedule();
  for (const k of [0, 1, 7, 1000]) assert.equal(s.factor(k), 1);
  assert.equal(s.warmupSteps, 0);
});

test('constant_with_warmup ramps k/warmup, then holds 1', () => {
  const s = createSchedule({ type: 'constant_with_warmup', warmup_steps: 4 });
  assert.deepEqual([0, 1, 2, 3, 4, 5, 50].map(s.factor), [0, 0.25, 0.5, 0.75, 1, 1, 1]);
});

test('linear: warmup 2 of 10 steps, then (10 - k) / 8 down to 0', () => {
  const s = createSchedule({ type: 'linear', warmup_steps: 2 }, 10);
  const want = [0, 0.5, 1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0, 0];
  for (const [k, w] of want.entries()) near(s.factor(k), w, `k=${k}`);
});

test('linear without warmup starts at 1 (the first update uses the full rate)', () => {
  const s = createSchedule({ type: 'linear' }, 4);
  assert.deepEqual([0, 1, 2, 3, 4].map(s.factor), [1, 0.75, 0.5, 0.25, 0]);
});

test('cosine: warmup 2 of 10, then 0.5·(1 + cos(π·progress))', () => {
  const s = createSchedule({ type: 'cosine', warmup_steps: 2 }, 10);
  near(s.factor(1), 0.5, 'warmup');
  near(s.factor(2), 1, 'peak');
  near(s.factor(4), 0.5 * (1 + Math.SQRT1_2), 'progress 1/4'); // cos(π/4) = 1/√2
  near(s.factor(6), 0.5, 'progress 1/2');
  near(s.factor(8), 0.5 * (1 - Math.SQRT1_2), 'progress 3/4');
  near(s.factor(10), 0, 'end');
});

test('cosine with num_cycles 1 comes back up to 1 at the end', () => {
  const s = createSchedule({ type: 'cosine', num_cycles: 1 }, 8);
  near(s.factor(4), 0, 'middle'); // 0.5·(1 + cos(π))
  near(s.factor(8), 1, 'end');
  near(s.factor(2), 0.5, 'quarter');
});

test('warmup_ratio is ceil(total · ratio) steps', () => {
  const s = createSchedule({ type: 'linear', warmup_ratio: 0.1 }, 25);
  assert.equal(s.warmupSteps, 3); // ceil(2.5)
  near(s.factor(1), 1 / 3, 'warmup');
  near(s.factor(3), 1, 'peak');
  near(s.factor(14), 0.5, 'half way: (25 - 14) / 22');
});

test('bad schedules are ConfigErrors naming the field', () => {
  const bad: [Parameters<typeof createSchedule>, RegExp][] = [
    [[{ type: 'linear' }], /field 'schedule.total_steps'/],
    [[{ type: 'cosine', warmup_steps: 2 }, 0], /field 'schedule.total_steps'/],
    [[{ type: 'linear', warmup_steps: 2, warmup_ratio: 0.1 }, 10], /field 'schedule.warmup_ratio'/],
    [[{ type: 'linear', warmup_ratio: 1.5 }, 10], /field 'schedule.warmup_ratio'/],
    [[{ type: 'linear', warmup_steps: -1 }, 10], /field 'schedule.warmup_steps'/],
    [[{ type: 'exponential' } as never, 10], /field 'schedule.type'/],
    [[{ type: 'constant', warmup_steps: 5 }], /field 'schedule.type'/],
    [[{ type: 'linear', num_cycles: 2 }, 10], /field 'schedule.num_cycles'/],
    [[{ type: 'linear', warmup: 3 } as never, 10], /schedule/],
  ];
  for (const [args, re] of bad)
    assert.throws(
      () => createSchedule(...args),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      JSON.stringify(args),
    );
  assert.throws(() => createSchedule().factor(-1), RangeError);
});
