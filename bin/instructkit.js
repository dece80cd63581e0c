#!/usr/bin/env node
// CLI entry. In a checkout (src/ present) it runs the TypeScript sources through tsx, so no build
// step is needed and a stale dist/ is never used; the published package ships only the compiled
// dist/ (built by `npm run build` on `npm pack`), which plain Node runs without tsx.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import('../dist/cli/main.js');
}
