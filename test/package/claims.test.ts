// What package.json and the README say instructkit does must be in the code: every training
// method they name has a trainer the library exports, and every command in the README's table is
// a command of the CLI. Methods still being built are named only under the README's "Coming"
// heading, so this test keeps passing as they land (and the claims can move up with them).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildProgram } from '../../src/cli/commands.ts';
import * as train from '../../src/train/index.ts';
import { repoRoot } from '../helpers/shared.ts';

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  description: string;
};
const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
const coming = readme.search(/^## Coming/m);
/** The README up to its "Coming" section: the claims about today. */
const readmeToday = coming >= 0 ? readme.slice(0, coming) : readme;

/** How a training method is named in prose, and the trainer export that backs the claim. */
const METHODS: { name: string; mention: RegExp; trainer: RegExp }[] = [
  { name: 'SFT', mention: /\bSFT\b|supervised fine-tuning/i, trainer: /^trainSft$/ },
  { name: 'reward model', mention: /\bRM\b|reward model/i, trainer: /^train(Reward|Rm)/i },
  { name: 'DPO', mention: /\bDPO\b/, trainer: /^trainDpo/i },
  { name: 'PPO', mention: /\bPPO\b/, trainer: /^trainPpo/i },
  { name: 'GRPO', mention: /\bGRPO\b/, trainer: /^trainGrpo/i },
  { name: 'ORPO', mention: /\bORPO\b/, trainer: /^trainOrpo/i },
];
const exported = Object.keys(train);

test('every training method package.json or the README names today has an exported trainer', () => {
  for (const [where, text] of [
    ['package.json description', pkg.description],
    ['README (before "## Coming")', readmeToday],
  ] as const) {
    for (const m of METHODS) {
      if (!m.mention.test(text)) continue;
      assert.ok(
        exported.some((e) => m.trainer.test(e)),
        `${where} names ${m.name}, but instructkit/train exports no trainer for it (${m.trainer})`,
      );
    }
  }
});

test('package.json names what exists: SFT, LoRA, pretraining, evaluation, serving, export', () => {
  for (const word of [/\bSFT\b/, /\bLoRA\b/, /pretrain/i, /evaluat/i, /serv(e|ing)/i, /export/i])
    assert.match(pkg.description, word);
});

test("every command in the README's table is a command of the CLI", () => {
  const program = buildProgram();
  const commands = new Map(
    program.commands.map((c) => [c.name(), new Set(c.commands.map((s) => s.name()))]),
  );
  const rows = readmeToday.match(/^\| `instructkit [^`]+`.*$/gm) ?? [];
  assert.ok(rows.length >= 5, 'the README has its command table');
  for (const row of rows) {
    // "`instructkit data convert \| render`" or "`instructkit pretrain` / `instructkit sft`"
    for (const cell of row.matchAll(/`instructkit ([a-z][a-z-]*)((?: \\?\|? ?[a-z][a-z-]*)*)/g)) {
      const [, top, rest] = cell;
      assert.ok(commands.has(top!), `README names \`instructkit ${top}\`, which the CLI lacks`);
      for (const sub of (rest ?? '').split(/[\s\\|]+/).filter(Boolean))
        assert.ok(
          commands.get(top!)!.has(sub),
          `README names \`instructkit ${top} ${sub}\`, which the CLI lacks`,
        );
    }
  }
});
