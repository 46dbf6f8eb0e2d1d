/**
 * `npm start`: the main job in one command. Runs `webmoe generate` on the trained demo model committed in
 * models/demo/ (a 5 M-parameter DeepseekV3 MoE trained on the Python standard library, block-FP8; see its
 * README.md) with a Python prompt, streaming tokens to stdout (greedy) with a stats line on stderr.
 *
 * Extra arguments go to `webmoe generate` (e.g. `npm start -- --prompt "import os" --max-tokens 100`; later flags
 * win). WEBMOE_DEMO_CONFIG=tiny|small|... runs a random toy checkpoint instead (made under ./toy-models/ when
 * missing): noise, but the whole path at another size.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isToyName, writeToyCheckpoint } from '../src/model/toy.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'webmoe.js');
const args = process.argv.slice(2);
const hasPrompt = args.includes('--prompt') || args.includes('--prompt-tokens');

/**
 * A prompt the demo model (a completion model for Python source) continues in kind, from models/demo/demo.json
 * (the page's one-click demo reads the same file). It ends without a newline on purpose: the tokenizer makes a
 * newline and the next line's indentation one token, so a prompt ending in a bare "\n" tells the model that the
 * next line starts at column 0.
 */
export const DEMO_PROMPT: string = (JSON.parse(readFileSync(join(root, 'models', 'demo', 'demo.json'), 'utf8')) as { prompt: string }).prompt;

let model: string;
let defaults: string[];
const toy = process.env.WEBMOE_DEMO_CONFIG;
if (toy !== undefined) {
  if (!isToyName(toy)) {
    process.stderr.write(`demo: unknown toy config '${toy}'\n`);
    process.exit(2);
  }
  model = resolve('toy-models', toy);
  if (!existsSync(join(model, 'config.json'))) {
    process.stderr.write(`demo: writing a toy checkpoint (${toy}) to ${model} ...\n`);
    const info = await writeToyCheckpoint(toy, model, { seed: 0 });
    process.stderr.write(`demo: ${info.files.join(', ')} (${(info.tensorBytes / 2 ** 20).toFixed(1)} MiB of tensors)\n`);
  }
  defaults = [...(hasPrompt ? [] : ['--prompt', 'Once upon a time']), '--max-tokens', '64', '--seed', '1'];
} else {
  model = join(root, 'models', 'demo');
  if (!existsSync(join(model, 'config.json'))) {
    process.stderr.write(`demo: ${model} is missing (it is committed: check out the whole repository)\n`);
    process.exit(2);
  }
  // greedy (the model's generation_config.json); 256 tokens of context in all
  defaults = [...(hasPrompt ? [] : ['--prompt', DEMO_PROMPT]), '--max-tokens', '160', '--temperature', '0'];
}
const run = spawnSync(process.execPath, [bin, 'generate', '--model', model, ...defaults, ...args], { stdio: 'inherit' });
process.exitCode = run.status ?? 1;
