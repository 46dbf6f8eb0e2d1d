/**
 * `webmoe logits --model DIR --tokens 1,2,3 --backend cpu --out FILE.npy [--json] [--taps FILE.safetensors]`:
 * the logits of the full causal forward over the given token ids, float32 [T, V], as a NumPy file and/or JSON
 * on stdout; `--taps` also writes the named intermediates (taps.ts) as F64 / I64 safetensors, the layout of the
 * golden fixtures, so two backends (or a backend and a golden dump) can be diffed tap by tap.
 *
 * Backends are a small switch (`openLogitsBackend`): the CPU reference (`cpu`) and the WebGPU engine (`webgpu`,
 * with `--adapter` and the opt-in `--precision f16`).
 */
import { writeFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { InputError } from '../errors.js';
import { createGpu, type AdapterChoice } from '../gpu/device.js';
import { adapterOption } from './doctor.js';
import { writeNpy } from '../format/npy.js';
import { encodeSafetensors, type TensorEntry } from '../format/writer.js';
import type { Checkpoint } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import { loadCpuWeights } from '../model/cpu-weights.js';
import { openCheckpointDir } from '../model/node-checkpoint.js';
import { checkTokens, referenceForward } from '../model/reference.js';
import type { TapMap } from '../model/taps.js';

/** What `webmoe logits` needs from a backend. */
export interface LogitsBackend {
  readonly name: string;
  readonly config: ModelConfig;
  /** Full causal forward from position 0; float32 logits [T, V]. Fills `taps` (shapes [T, ...]) when given. */
  logits(tokens: number[], opts?: { taps?: TapMap }): Promise<Float32Array>;
  close(): Promise<void>;
}

export const LOGITS_BACKENDS = ['cpu', 'webgpu'] as const;
export type LogitsBackendName = (typeof LOGITS_BACKENDS)[number];
export const PRECISIONS = ['f32', 'f16'] as const;

/** Options of the webgpu backend. */
export interface GpuBackendOptions {
  adapter?: AdapterChoice;
  /** 'f16' (opt-in) forms the FP8 products in f16; needs `shader-f16`. */
  precision?: (typeof PRECISIONS)[number];
}

/** Opens a backend over an already validated checkpoint. Add a case (and a LOGITS_BACKENDS entry) per backend. */
export async function openLogitsBackend(name: LogitsBackendName, ckpt: Checkpoint, gpuOpts: GpuBackendOptions = {}): Promise<LogitsBackend> {
  switch (name) {
    case 'webgpu': {
      const { createSession } = await import('../engine/session.js');
      const gpu = await createGpu({ adapter: gpuOpts.adapter });
      return {
        name,
        config: ckpt.config,
        // one forward from position 0: the latent cache is sized for exactly these tokens (more than
        // max_position_embeddings is an InputError from createSession)
        logits: async (tokens, opts) => {
          const session = await createSession(gpu, ckpt, { ctxSize: tokens.length, precision: gpuOpts.precision });
          try {
            return await session.forwardLogits(tokens, { taps: opts?.taps });
          } finally {
            session.dispose();
          }
        },
        close: async () => gpu.destroy(),
      };
    }
    case 'cpu': {
      const weights = await loadCpuWeights(ckpt);
      return {
        name,
        config: ckpt.config,
        logits: async (tokens, opts) => Float32Array.from(referenceForward(weights, tokens, { taps: opts?.taps })),
        close: async () => {},
      };
    }
  }
}

/** "1,2,3" → [1, 2, 3]; anything that is not a comma-separated list of non-negative integers is an InputError. */
export function parseTokenList(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.length === 1 && parts[0] === '') throw new InputError('--tokens is empty: give comma-separated token ids, e.g. --tokens 1,2,3', 'tokens');
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw new InputError(`--tokens: '${p}' is not a token id (need non-negative integers separated by commas)`, 'tokens');
    return Number(p);
  });
}

/** The taps as safetensors tensors: activations F64, expert ids I64 (the golden fixtures' dtypes). */
export function tapsToTensors(taps: TapMap): (TensorEntry & { data: Uint8Array })[] {
  return [...taps].map(([name, tap]) => {
    const wide = tap.data instanceof Int32Array ? BigInt64Array.from(tap.data, (v) => BigInt(v)) : tap.data;
    const data = new Uint8Array(wide.buffer, wide.byteOffset, wide.byteLength);
    return { name, dtype: tap.data instanceof Int32Array ? 'I64' : 'F64', shape: tap.shape, data };
  });
}

interface LogitsOptions {
  model: string;
  tokens: string;
  backend: LogitsBackendName;
  out?: string;
  json?: boolean;
  taps?: string;
  adapter?: AdapterChoice;
  precision?: (typeof PRECISIONS)[number];
}

export async function logitsCommand(opts: LogitsOptions): Promise<void> {
  if (!opts.out && !opts.json) throw new InputError('nothing to write: give --out FILE.npy and/or --json', 'out');
  const tokens = parseTokenList(opts.tokens);
  const ckpt = await openCheckpointDir(opts.model);
  try {
    checkTokens(tokens, ckpt.config.vocab_size);
    if (opts.precision === 'f16' && opts.backend !== 'webgpu') throw new InputError('--precision f16 needs --backend webgpu', 'precision');
    const backend = await openLogitsBackend(opts.backend, ckpt, { adapter: opts.adapter, precision: opts.precision });
    const taps: TapMap | undefined = opts.taps ? new Map() : undefined;
    let logits: Float32Array;
    try {
      logits = await backend.logits(tokens, { taps });
    } finally {
      await backend.close();
    }
    const V = ckpt.config.vocab_size;
    const shape = [tokens.length, V];
    if (opts.out) await writeFile(opts.out, writeNpy(logits, shape));
    if (opts.taps && taps) await writeFile(opts.taps, encodeSafetensors(tapsToTensors(taps), { format: 'pt', backend: backend.name }));
    if (opts.json) {
      const rows = Array.from({ length: tokens.length }, (_, t) => Array.from(logits.subarray(t * V, (t + 1) * V)));
      process.stdout.write(JSON.stringify({ shape, logits: rows }) + '\n');
    } else {
      process.stdout.write(`wrote logits [${shape.join(', ')}] (${backend.name}) to ${opts.out}\n`);
    }
  } finally {
    await ckpt.close();
  }
}

export function registerLogits(program: Command): void {
  program
    .command('logits')
    .description('compute float32 logits [T, V] of a token sequence (full causal forward) and write them as .npy or JSON')
    .requiredOption('--model <dir>', 'checkpoint folder (config.json + model.safetensors)')
    .requiredOption('--tokens <ids>', 'comma-separated token ids, e.g. 1,2,3')
    .addOption(new Option('--backend <name>', 'which implementation computes them').choices([...LOGITS_BACKENDS]).default('cpu'))
    .option('--out <file>', 'write the logits as a NumPy .npy file (float32, [T, V])')
    .option('--json', 'print {"shape": [T, V], "logits": [[...], ...]} on stdout')
    .option('--taps <file>', 'also write the named intermediates (embed, layers.{i}.*, final_norm) as safetensors')
    .addOption(new Option('--precision <p>', 'webgpu: f32, or f16 (opt-in: FP8 products formed in f16; needs shader-f16)').choices([...PRECISIONS]).default('f32'))
    .addOption(adapterOption())
    .action((opts: LogitsOptions) => logitsCommand(opts));
}
