// Seed tasks in the Self-Instruct format (one JSON object per line: id, name, instruction,
// instances [{input, output}], is_classification), the starting pool for both pipelines.
import { z } from 'zod';
import { DataError } from '../util/errors.ts';
import { readJsonl } from '../util/jsonl.ts';

export const SeedTask = z.looseObject({
  id: z.string().optional(),
  name: z.string().optional(),
  instruction: z.string().min(1),
  instances: z.array(z.strictObject({ input: z.string(), output: z.string() })).min(1),
  is_classification: z.boolean().default(false),
});
export type SeedTask = z.infer<typeof SeedTask>;

/** Reads seed tasks; a bad line is a DataError naming the file, line and field. */
export async function loadSeedTasks(path: string): Promise<SeedTask[]> {
  const out: SeedTask[] = [];
  for await (const { value, line } of readJsonl(path)) {
    const r = SeedTask.safeParse(value);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new DataError(issue.message, { file: path, line, field: issue.path.join('.') });
    }
    out.push(r.data);
  }
  if (out.length === 0) throw new DataError('no seed tasks in file', { file: path });
  return out;
}
