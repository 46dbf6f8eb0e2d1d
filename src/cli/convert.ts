/** `webmoe convert`: rewrites a checkpoint as block-FP8, INT4 routed experts + BF16, or BF16 (model/convert.ts). */
import { resolve } from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { checkpointFilesIn, nodeFolder, removeCheckpointFiles } from '../format/node-writer.js';
import { convertCheckpoint, CONVERT_TARGETS, type ConvertTarget } from '../model/convert.js';
import { humanBytes } from '../model/inspect.js';
import { folderFiles } from '../model/node-checkpoint.js';

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** "5GB", "500MB", "2GiB", "123456" (bytes) -> bytes. */
export function parseByteSize(value: string, name = 'shard-size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  const n = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!(n >= 1) || !Number.isSafeInteger(n)) throw new InputError(`--${name} must be a size such as 5GB, 500MB or 2GiB, got '${value}'`, name);
  return n;
}

export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('rewrite a checkpoint: --to fp8 (every linear block-FP8, DeepSeek/K2-Instruct layout), int4-experts (routed experts INT4 pack-quantized, other linears BF16, K2-Thinking layout) or bf16; streamed tensor by tensor, sharded with an index')
    .requiredOption('--model <dir>', 'input checkpoint folder (FP8, BF16, INT4 experts; flat or K2.5-wrapped)')
    .requiredOption('--out <dir>', 'output folder')
    .requiredOption('--to <format>', `target: ${CONVERT_TARGETS.join(' | ')}`)
    .option('--shard-size <size>', 'bytes of tensor data per shard (e.g. 5GB, 500MB, 2GiB); more than one shard also writes model.safetensors.index.json', '5GB')
    .option('--force', 'replace the checkpoint files already in --out')
    .action(async (opts: { model: string; out: string; to: string; shardSize: string; force?: boolean }) => {
      if (!(CONVERT_TARGETS as readonly string[]).includes(opts.to)) throw new InputError(`--to must be one of ${CONVERT_TARGETS.join(', ')}, got '${opts.to}'`, 'to');
      const shardBytes = parseByteSize(opts.shardSize);
      if (resolve(opts.model) === resolve(opts.out)) throw new InputError('--out must be another folder than --model', 'out');
      const old = await checkpointFilesIn(opts.out);
      if (old.length && !opts.force) throw new InputError(`${opts.out} already holds a checkpoint (${old.slice(0, 3).join(', ')}${old.length > 3 ? ', ...' : ''}); pass --force to replace it`, 'out');
      await removeCheckpointFiles(opts.out);
      const started = Date.now();
      const bar = new SingleBar({ stream: process.stderr, format: 'convert [{bar}] {percentage}% | {doneH} / {totalH} | eta {eta}s | {tensor}', hideCursor: true });
      let started_ = false;
      try {
        const info = await convertCheckpoint(folderFiles(opts.model), opts.to as ConvertTarget, await nodeFolder(opts.out), {
          shardBytes,
          onProgress(done, total, tensor) {
            if (!started_) {
              bar.start(total, 0, { doneH: humanBytes(0), totalH: humanBytes(total), tensor });
              started_ = true;
            }
            bar.update(done, { doneH: humanBytes(done), totalH: humanBytes(total), tensor });
          },
        });
        if (started_) bar.stop();
        const secs = ((Date.now() - started) / 1000).toFixed(1);
        process.stdout.write(
          `converted ${opts.model} to ${opts.to} in ${opts.out}: ${humanBytes(info.tensorBytes)} of tensors (${info.converted} leaves re-encoded, ${info.copied} copied) in ${secs} s; files: ${info.files.join(', ')}\n`,
        );
      } catch (err) {
        if (started_) bar.stop();
        throw err;
      }
    });
}
