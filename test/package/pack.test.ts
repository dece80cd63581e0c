// instructkit as a consumer gets it: `npm pack` (prepack builds dist/ with tsc), then the tarball
// installed into an empty temporary project with nothing but the npm registry (offline cache
// first), using the one setting the README documents for onnxruntime-node's postinstall.
// Every subpath export must import in plain Node (no tsx), a TypeScript file must type-check
// against the shipped .d.ts, and the installed `instructkit` bin must run.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../helpers/shared.ts';

const npmVersion = spawnSync('npm', ['--version'], { encoding: 'utf8' });
const noNpm = npmVersion.status === 0 ? false : 'npm is not on PATH, so `npm pack` cannot run';

const ours = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  version: string;
  exports: Record<string, { types: string; default: string }>;
  devDependencies: Record<string, string>;
};

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    maxBuffer: 64 << 20,
  });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

describe('npm pack, install into an empty project, use from plain Node and tsc', {
  skip: noNpm,
}, () => {
  let dir = '';
  let project = '';
  let installed = '';

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ik-pack-'));
    const packed = JSON.parse(
      run('npm', ['pack', '--json', '--pack-destination', dir], repoRoot, {
        // npm pack in a test: keep its notices out of the way.
        npm_config_loglevel: 'error',
      }),
    ) as { filename: string; files: { path: string }[] }[];
    const tarball = join(dir, packed[0]!.filename);
    const files = packed[0]!.files.map((f) => f.path);
    assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'), 'dist shipped');
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/')), files.join(' '));

    project = join(dir, 'consumer');
    run('mkdir', ['-p', project], dir);
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
    );
    run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        tarball,
        `typescript@${ours.devDependencies.typescript}`,
        `@types/node@${ours.devDependencies['@types/node']}`,
      ],
      project,
      // The README's setting: onnxruntime-node's postinstall otherwise downloads CUDA
      // binaries from api.nuget.org (the CPU build is in the npm package).
      { ONNXRUNTIME_NODE_INSTALL: 'skip', npm_config_loglevel: 'error' },
    );
    installed = join(project, 'node_modules', 'instructkit');
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('ships compiled JavaScript only; tsx is not a run-time dependency', () => {
    assert.ok(existsSync(join(installed, 'dist', 'cli', 'main.js')));
    assert.ok(existsSync(join(installed, 'dist', 'data', 'collection', 'templates.yaml')));
    assert.ok(!existsSync(join(installed, 'src')));
    assert.ok(!existsSync(join(project, 'node_modules', 'tsx')), 'tsx installed for a consumer');
  });

  test('every subpath export imports in plain Node 20', () => {
    const subpaths = Object.keys(ours.exports);
    assert.ok(subpaths.length >= 9);
    const script = `
      const out = {};
      for (const s of ${JSON.stringify(subpaths)}) {
        const m = await import(s === '.' ? 'instructkit' : 'instructkit' + s.slice(1));
        out[s] = Object.keys(m).length;
      }
      console.log(JSON.stringify(out));`;
    // No --import tsx: a consumer's plain `node`.
    const counts = JSON.parse(
      run(process.execPath, ['--input-type=module', '-e', script], project),
    ) as Record<string, number>;
    for (const s of subpaths) assert.ok(counts[s]! > 0, `instructkit${s.slice(1)} exports nothing`);
  });

  test('worker threads start on the compiled entry modules, without tsx', () => {
    // Callers name worker-entry.ts; in dist/ the .js beside it must run. A request before 'init'
    // gets the entry module's own refusal back: the module loaded and answered.
    const tsWorker = pathToFileURL(join(installed, 'dist', 'util', 'ts-worker.js')).href;
    const script = `
      const { spawnTsWorker } = await import(${JSON.stringify(tsWorker)});
      const w = spawnTsWorker(new URL('../engine/worker-entry.ts', ${JSON.stringify(tsWorker)}));
      const reply = await new Promise((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
        w.postMessage({ id: 1, type: 'dispose' });
      });
      await w.terminate();
      console.log(JSON.stringify(reply));`;
    // A file, not `-e`: workers inherit execArgv, and --input-type would reach them.
    writeFileSync(join(project, 'worker-check.mjs'), script);
    const reply = run(process.execPath, ['worker-check.mjs'], project);
    assert.match(reply, /"ok":false/);
    assert.match(reply, /'dispose' before 'init'/);
  });

  test('a TypeScript file type-checks against the shipped declarations', () => {
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2023',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          types: ['node'],
          // Third-party declarations (onnx-proto's need protobufjs' global Long) are not ours.
          skipLibCheck: true,
        },
        include: ['check.ts'],
      }),
    );
    // The @ts-expect-error lines fail the check if the types resolved to `any`.
    writeFileSync(
      join(project, 'check.ts'),
      `import { ConfigError, Rng, train } from 'instructkit';
import { type SftConfig, parseSftConfig, trainSft } from 'instructkit/train';
import { createApp } from 'instructkit/serve';
const rng: Rng = new Rng(1);
const run: typeof train.trainSft = trainSft;
const cfg: SftConfig = parseSftConfig({ model_name_or_path: 'm', train_file: 't.jsonl', output_dir: 'o' });
// @ts-expect-error an SftConfig field has its declared type
const bad: SftConfig = { ...cfg, learning_rate: 'fast' };
// @ts-expect-error trainSft takes a config object
void trainSft(42);
console.log(rng, run, bad, createApp, ConfigError);
`,
    );
    run(
      process.execPath,
      [join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'],
      project,
    );
  });

  test('the installed bin runs: instructkit --version', () => {
    const out = run(join(project, 'node_modules', '.bin', 'instructkit'), ['--version'], project);
    assert.equal(out.trim(), ours.version);
  });
});
