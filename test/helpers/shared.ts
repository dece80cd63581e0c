// Locates ../shared/data (real data from the reference projects) for tests. A missing folder
// is an error, not a skip: a test that cannot run must not pass.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sharedRoot = resolve(repoRoot, '..', 'shared');

/** Absolute path of a file under ../shared/data; throws if it is missing. */
export function sharedData(...parts: string[]): string {
  const p = join(sharedRoot, 'data', ...parts);
  if (!existsSync(p)) {
    throw new Error(
      `test data not found: ${p} (the tests expect the shared folder beside the repository)`,
    );
  }
  return p;
}

/** Absolute path under test/fixtures. */
export function fixture(...parts: string[]): string {
  return join(repoRoot, 'test', 'fixtures', ...parts);
}
