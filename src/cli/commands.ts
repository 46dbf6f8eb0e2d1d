/** The list of CLI commands: each module registers one command (with its --help) on the program. */
import type { Command } from 'commander';
import { registerDoctor } from './doctor.js';
import { registerMakeToy } from './make-toy.js';
import { registerInspect } from './inspect.js';
import { registerLogits } from './logits.js';
import { registerGenerate } from './generate.js';
import { registerBench } from './bench.js';
import { registerServe } from './serve.js';
import { registerAgent } from './agent.js';
import { registerEval } from './eval.js';
import { registerConvert } from './convert.js';

export function registerCommands(program: Command): void {
  registerDoctor(program);
  registerMakeToy(program);
  registerInspect(program);
  registerLogits(program);
  registerGenerate(program);
  registerBench(program);
  registerServe(program);
  registerAgent(program);
  registerEval(program);
  registerConvert(program);
}
