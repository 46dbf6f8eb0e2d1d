/** `webmoe make-toy`: writes a random toy checkpoint (HF layout; FP8, BF16 or INT4 experts; flat or K2.5) for tests and benchmarks. */
import { readFile } from 'node:fs/promises';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { ConfigError, InputError } from '../errors.js';
import { checkpointFilesIn } from '../format/node-writer.js';
import { humanBytes, inspectConfig } from '../model/inspect.js';
import { isToyName, TOY_CONFIG_NAMES, TOY_QUANTS, toyConfig, writeToyCheckpoint, type ToyName, type ToyQuant } from '../model/toy.js';

/** Above this many bytes of tensor data make-toy shows a progress bar on stderr. */
const PROGRESS_MIN_BYTES = 64 * 2 ** 20;

export function parseIntOption(value: string, name: string, min: number): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) throw new InputError(`--${name} must be an integer >= ${min}, got '${value}'`, name);
  return n;
}

/** A toy name, or the JSON object of a config.json file. */
export async function loadConfigArg(arg: string): Promise<ToyName | Record<string, unknown>> {
  if (isToyName(arg)) return arg;
  let text: string;
  try {
    text = await readFile(arg, 'utf8');
  } catch (err) {
    throw new InputError(
      `--config '${arg}' is neither a named toy config (${TOY_CONFIG_NAMES.join(', ')}) nor a readable config.json (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      'config',
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`not valid JSON (${(err as Error).message})`, undefined, undefined, arg);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError('config.json must be a JSON object', undefined, json, arg);
  return json as Record<string, unknown>;
}

async function refuseOldCheckpoint(dir: string, force: boolean): Promise<void> {
  const old = await checkpointFilesIn(dir);
  if (old.length && !force) throw new InputError(`${dir} already holds a checkpoint (${old.slice(0, 3).join(', ')}${old.length > 3 ? ', ...' : ''}); pass --force to replace it`, 'out');
}

export function registerMakeToy(program: Command): void {
  program
    .command('make-toy')
    .description('write a random toy checkpoint in the HF DeepSeek-V3 / Kimi-K2 layout (FP8 block-quantised weights, byte-level tokenizer when vocab >= 259)')
    .requiredOption('--config <name|file>', `a named toy config (${TOY_CONFIG_NAMES.join(', ')}) or a config.json file`)
    .requiredOption('--out <dir>', 'output folder')
    .option('--seed <n>', 'PRNG seed', '0')
    .option('--shards <k>', 'number of safetensors shards (k > 1 also writes model.safetensors.index.json)', '1')
    .option('--quant <format>', `linear weight format over the config's own: fp8 (block FP8), bf16 (no quantization_config), int4 (Kimi K2-Thinking: routed experts INT4 pack-quantized, other linears BF16)`)
    .option('--k25', 'Kimi K2.5 layout: config under text_config, tensors prefixed language_model., vision tensors (ignored by the loader), six-digit shard totals')
    .option('--force', 'replace the checkpoint files already in --out')
    .option('--max-gib <n>', 'refuse to write more than this many GiB of tensors (a production config would be ~1 TB)', '32')
    .action(async (opts: { config: string; out: string; seed: string; shards: string; force?: boolean; maxGib: string; quant?: string; k25?: boolean }) => {
      if (opts.quant !== undefined && !(TOY_QUANTS as readonly string[]).includes(opts.quant)) throw new InputError(`--quant must be one of ${TOY_QUANTS.join(', ')}, got '${opts.quant}'`, 'quant');
      const layout = { quant: opts.quant as ToyQuant | undefined, k25: opts.k25 === true };
      const seed = parseIntOption(opts.seed, 'seed', Number.MIN_SAFE_INTEGER);
      const shards = parseIntOption(opts.shards, 'shards', 1);
      const maxGib = parseIntOption(opts.maxGib, 'max-gib', 1);
      const source = await loadConfigArg(opts.config);
      const bytes = inspectConfig(toyConfig(source, layout), 'config').bytes.tensorData;
      if (bytes > maxGib * 2 ** 30) {
        throw new InputError(`this config would write ${humanBytes(bytes)} of tensors, more than --max-gib ${maxGib}; use a smaller config or raise --max-gib`, 'max-gib');
      }
      await refuseOldCheckpoint(opts.out, opts.force === true);
      let bar: SingleBar | undefined;
      const started = Date.now();
      try {
        const info = await writeToyCheckpoint(source, opts.out, {
          seed,
          shards,
          ...layout,
          onProgress(done, total) {
            if (!bar && total >= PROGRESS_MIN_BYTES) {
              bar = new SingleBar({
                stream: process.stderr,
                format: 'make-toy [{bar}] {percentage}% | {doneH} / {totalH} | eta {eta}s',
                hideCursor: true,
              });
              bar.start(total, 0, { doneH: humanBytes(0), totalH: humanBytes(total) });
            }
            bar?.update(done, { doneH: humanBytes(done), totalH: humanBytes(total) });
          },
        });
        bar?.stop();
        const secs = ((Date.now() - started) / 1000).toFixed(1);
        process.stdout.write(
          `wrote ${typeof source === 'string' ? source : 'config'} (seed ${seed}) to ${opts.out}: ${humanBytes(info.tensorBytes)} of tensors in ${secs} s; files: ${info.files.join(', ')}\n`,
        );
      } catch (err) {
        bar?.stop();
        throw err;
      }
    });
}
