/**
 * `npm start`: the main job in one command. Makes a toy checkpoint under ./toy-models/ when there is none
 * (src/model/toy.ts: random FP8 weights, byte-level tokenizer), then runs `webmoe generate` on it, streaming
 * tokens to stdout with a stats line on stderr. The toy's weights are random, so its text is noise: what the
 * demo shows is the whole path (checkpoint → WebGPU → sampling → tokenizer → stream) and its speed.
 *
 * Extra arguments go to `webmoe generate` (e.g. `npm start -- --temperature 0 --max-tokens 200`);
 * WEBMOE_DEMO_CONFIG picks another toy config (default small).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isToyName, writeToyCheckpoint } from '../src/model/toy.js';

const config = process.env.WEBMOE_DEMO_CONFIG ?? 'small';
if (!isToyName(config)) {
  process.stderr.write(`demo: unknown toy config '${config}'\n`);
  process.exit(2);
}
const dir = resolve('toy-models', config);
if (!existsSync(join(dir, 'config.json'))) {
  process.stderr.write(`demo: writing a toy checkpoint (${config}) to ${dir} ...\n`);
  const info = await writeToyCheckpoint(config, dir, { seed: 0 });
  process.stderr.write(`demo: ${info.files.join(', ')} (${(info.tensorBytes / 2 ** 20).toFixed(1)} MiB of tensors)\n`);
}
const args = process.argv.slice(2);
const prompt = args.includes('--prompt') || args.includes('--prompt-tokens') ? [] : ['--prompt', 'Once upon a time'];
// later flags win, so the user's arguments override these defaults
const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'webmoe.js');
const run = spawnSync(process.execPath, [bin, 'generate', '--model', dir, ...prompt, '--max-tokens', '64', '--seed', '1', ...args], { stdio: 'inherit' });
process.exitCode = run.status ?? 1;
