// The `instructkit` command: parses argv with commander and dispatches to the command table.
// Errors from any stage are printed as one readable message with their hint; exit code 1.
import { InstructkitError } from '../util/errors.ts';
import { buildProgram } from './commands.ts';

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof InstructkitError) {
      process.stderr.write(`instructkit: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw e;
  }
}

await main(process.argv);
