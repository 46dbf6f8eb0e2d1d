/**
 * Loading a checkpoint (folder or URL) for a CLI command (`generate`, `serve`, `agent`): the GPU context for the webgpu
 * backend, a progress bar on stderr while the weights load (drawn only on a terminal), and one close() that
 * frees the model and then the device. A load that fails frees what it had created before rethrowing.
 */
import cliProgress from 'cli-progress';
import type { LocalTextModel } from '../agent/local-backend.js';
import type { GenerationEvent } from '../engine/types.js';
import { Option } from 'commander';
import type { Out } from '../agent/cli-commands.js';
import { BACKENDS, loadTextModel, type Backend, type LoadProgress, type LoadTextModelOptions, type TextModel } from '../engine/text-model.js';
import { InputError } from '../errors.js';
import { createGpu, type AdapterChoice, type GpuContext } from '../gpu/device.js';
import { urlFiles, type CheckpointFiles } from '../model/checkpoint.js';
import type { HttpSourceOptions } from '../format/source.js';
import { folderFiles } from '../model/node-checkpoint.js';
import { adapterOption } from './doctor.js';

export interface CliModelOptions {
  /** The checkpoint folder, or an http(s) URL of one (`--model`). */
  model: string;
  /** Default 'webgpu'. */
  backend?: Backend;
  /** `--adapter` (webgpu only). */
  adapter?: AdapterChoice;
  /** `--ctx-size`. */
  ctxSize?: number;
  /** `--precision` (webgpu only). */
  precision?: 'f32' | 'f16';
  /** Runs once the checkpoint and tokenizer are open, before the weights load: throw here to fail fast. */
  beforeWeights?: LoadTextModelOptions['beforeWeights'];
  /** `--max-sequences` / `--max-queue` (webgpu): concurrent generations with batched decode steps. */
  maxSequences?: number;
  maxQueue?: number;
  /** `--connect-timeout` / `--idle-timeout` in seconds, for a URL (default 30 each). */
  connectTimeout?: number;
  idleTimeout?: number;
  /** `--gpu-memory` in MiB (webgpu): expert offloading under this budget. */
  gpuMemory?: number;
  /** `--record-routing`: keep every token's expert ids (written by the command). */
  recordRouting?: boolean;
}

export interface CliModel {
  model: TextModel;
  /** The device of the webgpu backend; undefined on the cpu backend. */
  gpu: GpuContext | undefined;
  /** "NAME on DEVICE (DRIVER); X MiB on the GPU; context N" for the line a command prints on stderr. */
  describe(): string;
  /** Frees the model, then the device (once; later calls do nothing). */
  close(): Promise<void>;
}

/** Creates the device (webgpu), loads the checkpoint with a progress bar on `err`, and returns both. */
export async function loadCliModel(opts: CliModelOptions, err: Out): Promise<CliModel> {
  const backend = opts.backend ?? 'webgpu';
  let gpu: GpuContext | undefined;
  const bar = progressBar(err);
  try {
    if (backend === 'webgpu') gpu = await createGpu({ adapter: opts.adapter });
    const http: HttpSourceOptions = { connectTimeoutMs: seconds(opts.connectTimeout), idleTimeoutMs: seconds(opts.idleTimeout), onBytes: bar.download };
    const offload = opts.gpuMemory !== undefined || opts.recordRouting
      ? { gpuMemory: opts.gpuMemory !== undefined ? opts.gpuMemory * 2 ** 20 : Number.MAX_SAFE_INTEGER, recordRouting: opts.recordRouting, streaming: opts.gpuMemory === undefined ? true : undefined }
      : undefined;
    const model = await loadTextModel(checkpointFiles(opts.model, http), {
      backend, gpu, ctxSize: opts.ctxSize, precision: opts.precision, onProgress: bar.update, beforeWeights: opts.beforeWeights,
      maxSequences: opts.maxSequences, maxQueue: opts.maxQueue, offload,
    });
    bar.stop();
    let closed = false;
    return {
      model,
      gpu,
      describe() {
        const where = gpu ? `${gpu.info.description || gpu.info.device || gpu.info.vendor} (${gpu.info.driver})` : 'CPU reference';
        return `${model.name} on ${where}; ${(model.session.gpuBytes() / 2 ** 20).toFixed(1)} MiB on the GPU; context ${model.contextSize}`;
      },
      async close() {
        if (closed) return;
        closed = true;
        try {
          await model.close();
        } finally {
          gpu?.destroy();
        }
      },
    };
  } catch (e) {
    bar.stop();
    gpu?.destroy();
    throw e;
  }
}

/** `--model`: an http(s) URL is read with HTTP Range requests (with `http`'s timeouts), anything else is a folder on disk. */
export function checkpointFiles(model: string, http: HttpSourceOptions = {}): CheckpointFiles {
  return /^https?:\/\//i.test(model) ? urlFiles(model, undefined, http) : folderFiles(model);
}

const seconds = (s: number | undefined): number | undefined => (s === undefined ? undefined : s * 1000);

/** `--connect-timeout S` for commands that take `--model URL`: seconds to wait for a server's response. */
export function connectTimeoutOption(): Option {
  return new Option('--connect-timeout <s>', 'with --model URL: seconds to wait for a response from the server (default 30)').argParser(secondsArg('connect-timeout'));
}

/** `--idle-timeout S` for commands that take `--model URL`: seconds without a byte before giving up. */
export function idleTimeoutOption(): Option {
  return new Option('--idle-timeout <s>', 'with --model URL: seconds without a byte of a download before giving up (default 30)').argParser(secondsArg('idle-timeout'));
}

function secondsArg(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InputError(`--${name} must be a number of seconds > 0, got '${v}'`, name);
    return n;
  };
}

/**
 * A cli-progress bar on stderr while weights load (drawn only on a terminal). `download` counts bytes from the
 * network: a URL's config and headers show as "downloading" from their first byte, before the weights start.
 */
export function progressBar(err: Out): { update: (p: LoadProgress) => void; download: (bytes: number) => void; stop: () => void } {
  if (!err.isTTY) return { update: () => {}, download: () => {}, stop: () => {} };
  const opening = new cliProgress.SingleBar({ stream: err as NodeJS.WritableStream, format: 'downloading config and headers: {mib} MiB', hideCursor: true, clearOnComplete: true });
  let downloaded = 0;
  let openingShown = false;
  const bar = new cliProgress.SingleBar(
    { stream: err as NodeJS.WritableStream, format: 'loading weights [{bar}] {percentage}% | {value}/{total} MiB', hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  const closeOpening = (): void => {
    if (openingShown) opening.stop();
    openingShown = false;
  };
  return {
    download(bytes) {
      downloaded += bytes;
      if (started) return;
      const mib = (downloaded / 2 ** 20).toFixed(2);
      if (!openingShown) opening.start(0, 0, { mib });
      else opening.update(0, { mib });
      openingShown = true;
    },
    update(p) {
      const mib = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;
      if (!started && p.phase !== 'open') {
        closeOpening();
        bar.start(mib(p.totalBytes), 0);
        started = true;
      }
      if (started) bar.update(mib(p.loadedBytes));
    },
    stop() {
      closeOpening();
      if (started) bar.stop();
      started = false;
    },
  };
}

/** Parser for an integer option in [min, max]; anything else is an InputError naming the option. */
export function intArg(name: string, min: number, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\s*-?\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
      throw new InputError(`--${name} must be an integer ${range}, got '${v}'`, name);
    }
    return n;
  };
}

/** Parser for a finite number option; anything else is an InputError naming the option. */
export function numArg(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InputError(`--${name} must be a number, got '${v}'`, name);
    return n;
  };
}

/**
 * The model-loading options shared by serve and agent: --backend, --adapter, --ctx-size. `--backend` has no
 * commander default, so a command can tell whether it was given (the default, webgpu, is applied by loadCliModel).
 */
export function modelLoadOptions(): Option[] {
  return [
    new Option('--backend <name>', 'webgpu (default), or cpu (the f64 CPU reference; slow, needs no adapter)').choices(BACKENDS as string[]),
    adapterOption(),
    new Option('--ctx-size <n>', 'context size in tokens (default: min(max_position_embeddings, 4096))').argParser(intArg('ctx-size', 1)),
    gpuMemoryOption(),
  ];
}

/**
 * `--gpu-memory MIB` (fractional allowed): every GPU allocation of the session within this budget; routed experts
 * that do not fit are streamed into per-layer slots (docs/offloading.md).
 */
export function gpuMemoryOption(): Option {
  return new Option('--gpu-memory <mib>', 'cap on all GPU memory of the model in MiB (e.g. 20.5); routed experts that do not fit are streamed from the checkpoint').argParser((v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InputError(`--gpu-memory must be a positive number of MiB, got '${v}'`, 'gpuMemory');
    return n;
  });
}

/**
 * The model as the server and the agent use it from the CLI: each generation yields to the event loop after
 * every token, and generations in flight are counted.
 *
 * Yielding matters on a compute-bound backend (cpu): its steps resolve without ever reaching the event loop,
 * and a socket write to a live client usually completes synchronously, so without it a whole generation runs
 * in one macrotask, and a client's disconnect, a SIGINT or a SIGTERM are only noticed when it has finished.
 * The count lets shutdown wait for the engine to let go of the session before freeing it.
 */
export function interactiveModel(model: LocalTextModel): { model: LocalTextModel; active: () => number; idle: (timeoutMs: number) => Promise<boolean> } {
  let active = 0;
  let waiters: (() => void)[] = [];
  async function* tracked(gen: AsyncGenerator<GenerationEvent>): AsyncGenerator<GenerationEvent> {
    active++;
    try {
      for await (const ev of gen) {
        yield ev;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      active--;
      if (active === 0) {
        for (const w of waiters) w();
        waiters = [];
      }
    }
  }
  return {
    model: {
      tokenizer: model.tokenizer,
      contextSize: model.contextSize,
      eosTokenIds: model.eosTokenIds,
      concurrency: model.concurrency,
      generateChoices: model.generateChoices && ((prompt, n, opts) => model.generateChoices!(prompt, n, opts).map(tracked)),
      batchSummary: model.batchSummary?.bind(model),
      generate: (prompt, opts) => tracked(model.generate(prompt, opts)),
    },
    active: () => active,
    idle: (timeoutMs) =>
      active === 0
        ? Promise.resolve(true)
        : new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), timeoutMs);
            waiters.push(() => {
              clearTimeout(timer);
              resolve(true);
            });
          }),
  };
}
