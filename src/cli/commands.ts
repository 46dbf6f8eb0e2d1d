/** The list of CLI commands: each module registers one command (with its --help) on the program. */
import type { Command } from 'commander';
import { registerDoctor } from './doctor.js';
import { registerLogits } from './logits.js';

export function registerCommands(program: Command): void {
  registerDoctor(program);
  registerLogits(program);
}
