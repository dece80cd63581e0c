// Runs one benchmark: `npm run bench -- <name> [args...]` runs bench/<name>.ts through tsx with
// the remaining args; with no name, lists the benches and their usage lines.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const dir = join(root, 'bench');
const benches = readdirSync(dir)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .sort();

function list(stream) {
  stream.write('usage: npm run bench -- <name> [args...]\nbenches:\n');
  for (const b of benches) {
    const usage = readFileSync(join(dir, `${b}.ts`), 'utf8').match(/^\/\/ Usage: (.*)$/m);
    stream.write(`  ${b.padEnd(16)} ${usage ? usage[1] : ''}\n`);
  }
}

const [name, ...args] = process.argv.slice(2);
if (name === undefined || name === '--help' || name === '-h') {
  list(process.stdout);
  process.exit(0);
}
const file = join(dir, `${name.replace(/\.ts$/, '')}.ts`);
if (!existsSync(file)) {
  process.stderr.write(`no bench named '${name}'\n`);
  list(process.stderr);
  process.exit(2);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', file, ...args], {
  cwd: root,
  stdio: 'inherit',
});
if (r.signal) process.kill(process.pid, r.signal);
process.exit(r.status ?? 1);
