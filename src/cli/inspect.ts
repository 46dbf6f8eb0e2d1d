/** `webmoe inspect`: validates a checkpoint and reports parameters, bytes and KV-cache size (or from a bare config.json). */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, InputError } from '../errors.js';
import { readTextFile } from '../format/node-source.js';
import { verifyTensor } from '../format/verify.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { parseConfig } from '../model/config.js';
import { formatInspect, inspectCheckpoint, inspectConfig, type InspectReport } from '../model/inspect.js';
import { openCheckpointDir } from '../model/node-checkpoint.js';

/** What `--verify-data` scanned: every tensor of every shard, all of its bytes. */
export interface VerifiedData {
  tensors: number;
  bytes: number;
}

/**
 * Reads every tensor of the checkpoint (MTP and unused ones too) in bounded chunks and scans it for NaN/Inf and
 * FP8 NaN codes (format/verify.ts); the first one found is a FormatError naming the file and the tensor.
 */
export async function verifyCheckpointData(ckpt: Checkpoint): Promise<VerifiedData> {
  let bytes = 0;
  for (const t of ckpt.tensors.values()) {
    await verifyTensor(t);
    bytes += t.byteLength;
  }
  return { tensors: ckpt.tensors.size, bytes };
}

/** Opens DIR (validating every header against the weight table) or parses CONFIG.json. */
export async function inspectPath(path: string, opts: { verifyData?: boolean } = {}): Promise<InspectReport & { verifiedData?: VerifiedData }> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (err) {
    throw new InputError(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : String(err)}`, 'path');
  }
  if (isDir) {
    const ckpt = await openCheckpointDir(path);
    try {
      const report = await inspectCheckpoint(ckpt, path);
      return opts.verifyData ? { ...report, verifiedData: await verifyCheckpointData(ckpt) } : report;
    } finally {
      await ckpt.close();
    }
  }
  if (opts.verifyData) throw new InputError(`--verify-data needs a checkpoint folder; ${path} is a file`, 'verify-data');
  // a regular file only: a FIFO named config.json would block the read forever
  const text = await readTextFile(path, 256 * 2 ** 20);
  if (text === undefined) throw new InputError(`${path}: no such file or folder`, 'path');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`not a JSON config file (${(err as Error).message})`, undefined, undefined, path);
  }
  return inspectConfig(parseConfig(json, path), basename(path));
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('validate a checkpoint folder against the weight table and report tensors, parameters (total, active per token), bytes on disk and on the GPU, and KV-cache bytes per token; a bare config.json gives the same numbers without weights')
    .argument('<path>', 'a checkpoint folder or a config.json')
    .option('--json', 'print the report as one JSON object')
    .option('--tensors', 'list every tensor (default: only when there are at most 512)')
    .option('--verify-data', 'also read every tensor and check that it holds no NaN/Inf (nor FP8 NaN codes): reads the whole checkpoint')
    .action(async (path: string, opts: { json?: boolean; tensors?: boolean; verifyData?: boolean }) => {
      const report = await inspectPath(path, { verifyData: opts.verifyData });
      if (opts.json) {
        process.stdout.write(JSON.stringify(report) + '\n');
      } else {
        process.stdout.write(formatInspect(report, { allTensors: opts.tensors }) + '\n');
        const v = report.verifiedData;
        if (v) process.stdout.write(`data verified: ${v.tensors} tensors, ${(v.bytes / 2 ** 20).toFixed(1)} MiB, no NaN or Inf\n`);
      }
      if (report.unexpected.length) {
        process.stderr.write(`webmoe: warning: ${path}: ${report.unexpected.length} tensors are not used by the model (first: '${report.unexpected[0]}')\n`);
      }
    });
}
