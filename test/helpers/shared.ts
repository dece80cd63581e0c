// Locates ../shared/data: real data from the reference projects (Self-Instruct seeds, FLAN,
// Super-NaturalInstructions, PromptSource templates, rouge_score fixtures), kept beside the
// repository rather than in it. A clean clone does not have it, so every test that reads it
// declares so and is *skipped* with a visible reason there (node:test counts it in the summary);
// CI always has it (.ci/run refuses to run without it), so there those tests always run.
//
//   import { noShared, sharedData } from '../helpers/shared.ts';
//   test('reads the seeds', { skip: noShared }, () => { const p = sharedData('self-instruct', 'seed_tasks.jsonl'); ... });
//   describe('PromptSource corpus', { skip: noShared }, () => { ... });
//   const rows = ifShared(() => readRows(sharedData('rouge', 'pairs.jsonl')), []);  // module level
//
// A file missing from a folder that is present is an error, never a skip.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sharedRoot = resolve(repoRoot, '..', 'shared');
export const sharedDataRoot = join(sharedRoot, 'data');

/**
 * `false` when ../shared/data is present; otherwise the reason to skip a test that needs it.
 * Pass it as the `skip` option of `test` or `describe`.
 */
export const noShared: string | false = existsSync(sharedDataRoot)
  ? false
  : `needs the reference data in ../shared/data (${sharedDataRoot}), which is not beside this clone`;

/** Absolute path of a file under ../shared/data; throws if it is missing. */
export function sharedData(...parts: string[]): string {
  const p = join(sharedDataRoot, ...parts);
  if (!existsSync(p)) {
    throw new Error(
      noShared
        ? `${noShared}: a test reading ${p} must be declared with { skip: noShared }`
        : `test data not found: ${p} (../shared/data is present but lacks this file)`,
    );
  }
  return p;
}

/**
 * For module-level reads: `f()` when ../shared/data is present, else `fallback` (the tests using
 * the value are skipped with `{ skip: noShared }`, so the fallback is never asserted on).
 */
export function ifShared<T>(f: () => T, fallback: T): T {
  return noShared ? fallback : f();
}

/**
 * Inside a running test: the path of a file under ../shared/data, or `undefined` after marking
 * the test skipped with the reason (the caller returns): `const p = sharedDataOrSkip(t, 'x.json'); if (!p) return;`
 */
export function sharedDataOrSkip(
  t: { skip(message?: string): void },
  ...parts: string[]
): string | undefined {
  if (noShared) {
    t.skip(noShared);
    return undefined;
  }
  return sharedData(...parts);
}

/** Absolute path under test/fixtures. */
export function fixture(...parts: string[]): string {
  return join(repoRoot, 'test', 'fixtures', ...parts);
}
