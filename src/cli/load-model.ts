/**
 * Loading a checkpoint (folder or URL) for a CLI command (`generate`, `serve`, `agent`): the GPU context for the webgpu
 * backend, a progress bar on stderr while the weights load (drawn only on a terminal), and one close() that
 * frees the model and then the device. A load that fails frees what it had created before rethrowing.
 */
import cliProgress from 'cli-progress';
import type { Out } from '../agent/cli-commands.js';
import { loadTextModel, type Backend, type LoadProgress, type LoadTextModelOptions, type TextModel } from '../engine/text-model.js';
import { createGpu, type AdapterChoice, type GpuContext } from '../gpu/device.js';
import { urlFiles, type CheckpointFiles } from '../model/checkpoint.js';
import { folderFiles } from '../model/node-checkpoint.js';

export interface CliModelOptions {
  /** The checkpoint folder, or an http(s) URL of one (`--model`). */
  model: string;
  /** Default 'webgpu'. */
  backend?: Backend;
  /** `--adapter` (webgpu only). */
  adapter?: AdapterChoice;
  /** `--ctx-size`. */
  ctxSize?: number;
  /** Runs once the checkpoint and tokenizer are open, before the weights load: throw here to fail fast. */
  beforeWeights?: LoadTextModelOptions['beforeWeights'];
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
    const model = await loadTextModel(checkpointFiles(opts.model), { backend, gpu, ctxSize: opts.ctxSize, onProgress: bar.update, beforeWeights: opts.beforeWeights });
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

/** `--model`: an http(s) URL is read with HTTP Range requests, anything else is a folder on disk. */
export function checkpointFiles(model: string): CheckpointFiles {
  return /^https?:\/\//i.test(model) ? urlFiles(model) : folderFiles(model);
}

/** A cli-progress bar on stderr while weights load (drawn only on a terminal). */
export function progressBar(err: Out): { update: (p: LoadProgress) => void; stop: () => void } {
  if (!err.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar(
    { stream: err as NodeJS.WritableStream, format: 'loading weights [{bar}] {percentage}% | {value}/{total} MiB', hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(p) {
      const mib = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;
      if (!started && p.phase !== 'open') {
        bar.start(mib(p.totalBytes), 0);
        started = true;
      }
      if (started) bar.update(mib(p.loadedBytes));
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
