#!/usr/bin/env node
/**
 * The `webmoe` command line: a thin face over the library. Each command lives in src/cli/<name>.ts and
 * registers itself on the program; this file only handles errors: a typed error becomes one line on stderr
 * and a non-zero exit (the stack only with --debug).
 */
import { Command, CommanderError } from 'commander';
import { oneLineMessage, WebmoeError } from './errors.js';
import { registerCommands } from './cli/commands.js';
import { exitQuietlyOnBrokenPipe } from './cli/terminal.js';

export async function main(argv: string[]): Promise<number> {
  exitQuietlyOnBrokenPipe();
  (await import('./gpu/node-adapter.js')).quietDawnNoise(); // Dawn's known adapter warnings, not real errors (see there)
  const program = new Command();
  program
    .name('webmoe')
    .description('Mixture-of-Experts inference on WebGPU (DeepSeek-V3 / Kimi-K2 block-FP8 checkpoints)')
    .option('--debug', 'print stack traces on errors')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerCommands(program);
  const debug = argv.includes('--debug');
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit through here with code 0; usage errors were already printed by commander
      return err.exitCode;
    }
    process.stderr.write(`webmoe: ${oneLineMessage(err)}\n`);
    if (debug && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    return err instanceof WebmoeError ? 2 : 1;
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
