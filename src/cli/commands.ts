// Everything instructkit can do, on one screen: each stage registers its subcommands here.
// Command files only parse flags and call one library function.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerDataCommands } from './data.ts';
import { registerDataPreferences } from './data-preferences.ts';
import { registerDataRender } from './data-render.ts';
import { registerDemo } from './demo.ts';
import { registerEval } from './eval.ts';
import { registerGrpo } from './grpo.ts';
import { registerPpo } from './ppo.ts';
import { registerPreferenceCommands } from './preference.ts';
import { registerRm } from './rm.ts';
import { registerServe } from './serve.ts';
import { registerSynthCommands } from './synth.ts';
import { registerTrainCommands } from './train.ts';

export function buildProgram(): Command {
  const program = new Command('instructkit')
    .description('Instruction-tune language models end to end on a CPU.')
    .showHelpAfterError()
    .exitOverride((err) => {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version')
        process.exit(0);
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
  program.version(packageVersion());

  const data = program
    .command('data')
    .description(
      'Instruction data: convert, render, mix, split, dedup, decontaminate, stats, inspect',
    );
  registerDataCommands(data);
  registerDataRender(data);
  registerDataPreferences(data);

  const synth = program
    .command('synth')
    .description('Synthesise instruction data with an LLM (Self-Instruct, Alpaca)');
  registerSynthCommands(synth);

  registerTrainCommands(program);
  registerRm(program);
  registerPreferenceCommands(program);
  registerGrpo(program);
  registerPpo(program);
  registerEval(program);
  registerServe(program);
  registerDemo(program);

  return program;
}

/** The version in package.json (two levels up from src/cli and from dist/cli alike). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}
