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
import { planOffload, streamedPerToken, type OffloadPlan } from '../engine/offload-plan.js';
import { gpuMemoryOption, intArg } from './load-model.js';

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
    .addOption(gpuMemoryOption())
    .option('--ctx-size <n>', 'with --gpu-memory: the context size of the KV cache (default: min(max_position_embeddings, 4096))', intArg('ctx-size', 1))
    .option('--hit-rate <p>', 'with --gpu-memory: the expert-cache hit rate for the bytes streamed per token (default 0.9)', (v: string) => {
      const n = Number(v);
      if (v.trim() === '' || !(n >= 0 && n <= 1)) throw new InputError(`--hit-rate must be a number in [0, 1], got '${v}'`, 'hit-rate');
      return n;
    })
    .action(async (path: string, opts: { json?: boolean; tensors?: boolean; verifyData?: boolean; gpuMemory?: number; ctxSize?: number; hitRate?: number }) => {
      if (opts.gpuMemory === undefined && (opts.ctxSize !== undefined || opts.hitRate !== undefined)) {
        throw new InputError('--ctx-size and --hit-rate apply with --gpu-memory', 'gpu-memory');
      }
      const report = await inspectPath(path, { verifyData: opts.verifyData });
      const offload = opts.gpuMemory === undefined ? undefined : offloadReport(report, opts.gpuMemory, opts.ctxSize, opts.hitRate ?? 0.9);
      if (opts.json) {
        process.stdout.write(JSON.stringify(offload ? { ...report, offload } : report) + '\n');
      } else {
        process.stdout.write(formatInspect(report, { allTensors: opts.tensors }) + '\n');
        if (offload) process.stdout.write(formatOffloadPlan(offload) + '\n');
        const v = report.verifiedData;
        if (v) process.stdout.write(`data verified: ${v.tensors} tensors, ${(v.bytes / 2 ** 20).toFixed(1)} MiB, no NaN or Inf\n`);
      }
      if (report.unexpected.length) {
        process.stderr.write(`webmoe: warning: ${path}: ${report.unexpected.length} tensors are not used by the model (first: '${report.unexpected[0]}')\n`);
      }
    });
}

/** `--gpu-memory`'s part of the report: the plan and the bytes streamed per token at the stated hit rate. */
export function offloadReport(report: InspectReport, mib: number, ctxSize: number | undefined, hitRate: number): OffloadPlan & { hitRate: number; streamedPerToken: number } {
  const format = report.bytes.byFormat.int4.leaves > 0 ? 'int4' : report.bytes.byFormat.fp8.leaves > 0 ? 'fp8' : 'bf16';
  const plan = planOffload(report.config, { gpuMemory: mib * 2 ** 20, ctxSize, format });
  return { ...plan, hitRate, streamedPerToken: streamedPerToken(plan, hitRate) };
}

/** The plan for people. */
export function formatOffloadPlan(p: OffloadPlan & { hitRate: number; streamedPerToken: number }): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 2 : 1)} MiB`;
  const lines = [
    `GPU memory ${mib(p.budget)} (estimate; the engine checks exactly at load):`,
    `  resident ${mib(p.fixed)}: weights ${mib(p.residentWeights)} (all but routed experts), KV cache ${mib(p.kvCache)}, activations and scratch ${mib(p.scratch)}`,
  ];
  if (p.slotsPerLayer < p.topK) {
    lines.push(`  too small: the minimum is ${mib(p.minimumBudget)} (${p.topK} expert slots in each of ${p.moeLayers} MoE layers)`);
  } else if (p.allResident) {
    lines.push(`  every routed expert resident (${p.experts} per layer x ${p.moeLayers} MoE layers, ${mib(p.expertBytes)} each): nothing is streamed`);
  } else {
    lines.push(`  ${p.slotsPerLayer} of ${p.experts} expert slots per MoE layer (${p.moeLayers} layers, ${(p.expertBytes / 1024).toFixed(1)} KiB per expert)`);
    lines.push(`  streams ${mib(p.streamedPerToken)} per decoded token at a hit rate of ${p.hitRate} (minimum budget ${mib(p.minimumBudget)})`);
  }
  return lines.join('\n');
}
