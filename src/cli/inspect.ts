/** `webmoe inspect`: validates a checkpoint and reports parameters, bytes and KV-cache size (or from a bare config.json). */
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, InputError } from '../errors.js';
import { parseConfig } from '../model/config.js';
import { formatInspect, inspectCheckpoint, inspectConfig, type InspectReport } from '../model/inspect.js';
import { openCheckpointDir } from '../model/node-checkpoint.js';

/** Opens DIR (validating every header against the weight table) or parses CONFIG.json. */
export async function inspectPath(path: string): Promise<InspectReport> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (err) {
    throw new InputError(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : String(err)}`, 'path');
  }
  if (isDir) {
    const ckpt = await openCheckpointDir(path);
    try {
      return await inspectCheckpoint(ckpt, path);
    } finally {
      await ckpt.close();
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
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
    .action(async (path: string, opts: { json?: boolean; tensors?: boolean }) => {
      const report = await inspectPath(path);
      if (opts.json) {
        process.stdout.write(JSON.stringify(report) + '\n');
      } else {
        process.stdout.write(formatInspect(report, { allTensors: opts.tensors }) + '\n');
      }
      if (report.unexpected.length) {
        process.stderr.write(`webmoe: warning: ${path}: ${report.unexpected.length} tensors are not used by the model (first: '${report.unexpected[0]}')\n`);
      }
    });
}
