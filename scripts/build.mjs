// `npm run build` (also run by `prepack`): compiles src/ to dist/ (JavaScript + .d.ts, relative
// `.ts` imports rewritten to `.js` by tsc's rewriteRelativeImportExtensions) and copies the
// non-TypeScript files the library reads at run time (e.g. data/collection/templates.yaml).
// dist/ is rebuilt from scratch so no file of a deleted module is ever packed.
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = `${root}dist`;
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
  cwd: root,
  stdio: 'inherit',
});
if (r.status !== 0) process.exit(r.status ?? 1);
cpSync(`${root}src`, dist, {
  recursive: true,
  filter: (src) => !src.endsWith('.ts'),
});
