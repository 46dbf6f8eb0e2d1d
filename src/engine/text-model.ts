/**
 * A checkpoint made ready to generate: opened and validated, tokenizer loaded, weights on the device (or the
 * CPU reference), eos ids and sampling defaults gathered. What the CLI, the browser worker, the demo and the
 * server load; platform-neutral (the caller brings the CheckpointFiles and the GpuContext).
 *
 * Load progress is measured on the byte sources: bytes read so far over the bytes of all weight tensors, so it
 * needs nothing from the engine and shows the same bar for a disk, a picked folder or a URL.
 */
import { formatOffload, type OffloadOptions } from './expert-offload.js';
import { InputError, TokenizerError } from '../errors.js';
import type { ByteSource } from '../format/source.js';
import type { GpuContext } from '../gpu/device.js';
import { openCheckpoint, type Checkpoint, type CheckpointFiles } from '../model/checkpoint.js';
import { storedBytes } from '../model/weights.js';
import { generate, type GenerateRunOptions } from './generate.js';
import { type Tokenizer } from '../text/tokenizer.js';
import { loadTokenizer } from '../text/load-tokenizer.js';
import type { GenerationEvent, InferenceSession, LoadProgress, SamplingOptions } from './types.js';
import type { BatchScheduler, Lane } from './scheduler.js';

export type Backend = 'webgpu' | 'cpu';
export const BACKENDS: readonly Backend[] = ['webgpu', 'cpu'];

export type { LoadProgress } from './types.js';

export interface LoadTextModelOptions {
  backend?: Backend;
  /** Required for the webgpu backend. */
  gpu?: GpuContext;
  /** KV cache size in tokens (default min(max_position_embeddings, 4096)). */
  ctxSize?: number;
  /** webgpu: 'f32' (default) or the opt-in 'f16' path (needs shader-f16). */
  precision?: 'f32' | 'f16';
  onProgress?: (p: LoadProgress) => void;
  /** Called after the checkpoint and tokenizer are open, before the weights load: throw here to fail fast. */
  beforeWeights?: (ckpt: Checkpoint, tokenizer: Tokenizer | undefined) => void;
  /**
   * webgpu: run up to this many generations at once, their decode steps batched (engine/scheduler.ts); each has
   * its own `ctxSize` of cache. Unset: one sequence, calls to generate() must not overlap.
   */
  maxSequences?: number;
  /** With maxSequences: generations that may wait for a free sequence before more are refused (default 64). */
  maxQueue?: number;
  /**
   * webgpu: expert offloading (docs/offloading.md): every GPU allocation within `offload.gpuMemory` bytes, the
   * routed experts that do not fit streamed from the checkpoint (or `offload.source`) into per-layer slots.
   */
  offload?: OffloadOptions;
}

/** Sampling defaults of a checkpoint (generation_config.json), in webmoe's option names. */
export interface GenerationDefaults extends SamplingOptions {
  maxTokens?: number;
}

export interface TextModel {
  readonly name: string;
  readonly checkpoint: Checkpoint;
  readonly session: InferenceSession;
  readonly tokenizer: Tokenizer | undefined;
  /** config.json's and generation_config.json's eos_token_id, and the tokenizer's eos token. */
  readonly eosTokenIds: number[];
  readonly defaults: GenerationDefaults;
  readonly contextSize: number;
  readonly backend: Backend;
  /** Set when the model batches concurrent generations (loadTextModel's maxSequences). */
  readonly scheduler?: BatchScheduler;
  /** Generations that may run at once: maxSequences with a scheduler, else 1. */
  readonly concurrency: number;
  /** With a scheduler: steps, mean rows per step, sequences in use, queue (for logs). */
  batchSummary?(): string;
  /** With expert offloading: the cumulative counters as one line (formatOffload), for logs. */
  offloadSummary?(): string | undefined;
  /**
   * generate() on this model's session with its tokenizer and eos ids; `opts` override the defaults. With a
   * scheduler, calls may overlap: each runs on a lane of its own and their decode steps are batched.
   */
  generate(prompt: string | readonly number[], opts?: GenerateRunOptions): AsyncGenerator<GenerationEvent, void, undefined>;
  /**
   * With a scheduler: n generations from one prompt that share its prefill (BatchScheduler.sharedLanes); choice
   * i uses seed `opts.seed + i` when a seed is given. Consume them concurrently.
   */
  generateChoices?(prompt: string | readonly number[], n: number, opts?: GenerateRunOptions): AsyncGenerator<GenerationEvent, void, undefined>[];
  /** Frees the session and closes the files (once; later calls do nothing). */
  close(): Promise<void>;
}

/** Reads generation_config.json: HF's `do_sample: false` means greedy; temperature / top_k / top_p as given. */
export function generationDefaults(gen: Record<string, unknown> | undefined): GenerationDefaults {
  const out: GenerationDefaults = {};
  if (!gen) return out;
  const num = (k: string): number | undefined => (typeof gen[k] === 'number' && Number.isFinite(gen[k]) ? (gen[k] as number) : undefined);
  if (num('temperature') !== undefined) out.temperature = num('temperature');
  if (num('top_k') !== undefined && Number.isInteger(num('top_k')) && num('top_k')! >= 0) out.topK = num('top_k');
  if (num('top_p') !== undefined && num('top_p')! > 0 && num('top_p')! <= 1) out.topP = num('top_p');
  if (num('max_new_tokens') !== undefined && Number.isInteger(num('max_new_tokens'))) out.maxTokens = num('max_new_tokens');
  if (gen.do_sample === false) out.temperature = 0;
  return out;
}

/**
 * The ids that end generation: generation_config.json's eos_token_id when it has one (it takes precedence for
 * generation, as in HF), else config.json's; plus the tokenizer's eos token. In order, without repeats.
 */
export function collectEosIds(ckpt: Checkpoint, tokenizer: Tokenizer | undefined): number[] {
  const gen = ckpt.generationConfig?.eos_token_id;
  const genIds = (Array.isArray(gen) ? gen : [gen]).filter((v): v is number => Number.isInteger(v));
  const ids = genIds.length > 0 ? genIds : [...ckpt.config.eos_token_id];
  ids.push(...(tokenizer?.eosTokenIds ?? []));
  return [...new Set(ids)];
}

/** Wraps every byte source of `files` to count the bytes read through it. */
export function countingFiles(files: CheckpointFiles, onRead: (bytes: number) => void): CheckpointFiles {
  return {
    name: files.name,
    readText: (f) => files.readText(f),
    async open(file) {
      const src = await files.open(file);
      const counted: ByteSource = {
        name: src.name,
        size: () => src.size(),
        async read(offset, length) {
          const b = await src.read(offset, length);
          onRead(b.length);
          return b;
        },
        close: () => src.close(),
      };
      return counted;
    },
  };
}

/** Opens, validates and loads a checkpoint for generation. */
export async function loadTextModel(files: CheckpointFiles, opts: LoadTextModelOptions = {}): Promise<TextModel> {
  const backend = opts.backend ?? 'webgpu';
  if (!BACKENDS.includes(backend)) throw new InputError(`unknown backend '${backend}' (use ${BACKENDS.join(' or ')})`, 'backend');
  if (backend === 'webgpu' && !opts.gpu) throw new InputError('the webgpu backend needs a GPU context (createGpu())', 'gpu');
  let loaded = 0;
  let total = 0;
  let phase: LoadProgress['phase'] = 'open';
  const report = (): void => opts.onProgress?.({ phase, loadedBytes: Math.min(loaded, total), totalBytes: total });
  const ckpt = await openCheckpoint(
    countingFiles(files, (n) => {
      if (phase !== 'weights') return;
      loaded += n;
      report();
    }),
  );
  try {
    if (opts.precision === 'f16' && backend !== 'webgpu') throw new InputError('--precision f16 needs --backend webgpu', 'precision');
    if (opts.offload && backend !== 'webgpu') throw new InputError('--gpu-memory needs --backend webgpu (the cpu backend holds the weights in host memory)', 'gpuMemory');
    if (opts.ctxSize !== undefined && (!Number.isInteger(opts.ctxSize) || opts.ctxSize < 1)) {
      throw new InputError(`--ctx-size must be a positive integer, got ${opts.ctxSize}`, 'ctxSize');
    }
    const tokenizer = await loadTokenizer(files, { tokenizerJson: ckpt.tokenizerJson });
    opts.beforeWeights?.(ckpt, tokenizer);
    for (const w of ckpt.weights) total += storedBytes(w);
    phase = 'weights';
    report();
    if (opts.maxSequences !== undefined) {
      if (backend !== 'webgpu') throw new InputError('--max-sequences needs --backend webgpu', 'maxSequences');
      const { createBatchSession } = await import('./batch-session.js');
      const { BatchScheduler } = await import('./scheduler.js');
      const batch = await createBatchSession(opts.gpu!, ckpt, { ctxSize: opts.ctxSize, precision: opts.precision, maxSequences: opts.maxSequences, offload: opts.offload });
      try {
        await batch.warmUp(); // the pipelines of every batch size now, not in the middle of the first bursts
      } catch (err) {
        batch.dispose();
        throw err;
      }
      phase = 'ready';
      loaded = total;
      report();
      return batchedTextModel(ckpt, new BatchScheduler(batch, { maxQueue: opts.maxQueue }), tokenizer);
    }
    const session = await createBackendSession(backend, ckpt, opts);
    phase = 'ready';
    loaded = total;
    report();
    return textModel(ckpt, session, tokenizer, backend);
  } catch (err) {
    await ckpt.close().catch(() => {});
    throw err;
  }
}

async function createBackendSession(backend: Backend, ckpt: Checkpoint, opts: LoadTextModelOptions): Promise<InferenceSession> {
  if (backend === 'cpu') {
    const { createCpuSession } = await import('./cpu-session.js');
    return createCpuSession(ckpt, { ctxSize: opts.ctxSize });
  }
  const { createSession } = await import('./session.js');
  return createSession(opts.gpu!, ckpt, { ctxSize: opts.ctxSize, precision: opts.precision, offload: opts.offload });
}

/** A TextModel over an already created session (tests, or a caller that builds its own session). */
export function textModel(ckpt: Checkpoint, session: InferenceSession, tokenizer: Tokenizer | undefined, backend: Backend): TextModel {
  const eosTokenIds = collectEosIds(ckpt, tokenizer);
  const defaults = generationDefaults(ckpt.generationConfig);
  let closed = false;
  return {
    name: ckpt.name,
    checkpoint: ckpt,
    session,
    tokenizer,
    eosTokenIds,
    defaults,
    contextSize: session.contextSize,
    backend,
    concurrency: 1,
    offloadSummary: () => {
      const st = session.offloadStats?.();
      return st ? formatOffload(st) : undefined;
    },
    generate: (prompt, o = {}) => generate(session, tokenizer, prompt, { eosTokenIds, ...defaults, ...definedOnly(o) }),
    async close() {
      if (closed) return;
      closed = true;
      session.dispose();
      await ckpt.close();
    },
  };
}

/**
 * A TextModel whose generations share a BatchSession through `scheduler`: each generate() call runs on a lane of
 * its own, released when the generation ends. `session` is a lane too (for callers that drive a session
 * directly); closing the model frees the whole batch.
 */
export function batchedTextModel(ckpt: Checkpoint, scheduler: BatchScheduler, tokenizer: Tokenizer | undefined): TextModel {
  const base = textModel(ckpt, scheduler.lane(undefined, () => scheduler.batch.dispose()), tokenizer, 'webgpu');
  const eosTokenIds = base.eosTokenIds;
  const defaults = base.defaults;
  return {
    ...base,
    scheduler,
    concurrency: scheduler.batch.maxSequences,
    offloadSummary: () => {
      const st = scheduler.batch.offloadStats();
      return st ? formatOffload(st) : undefined;
    },
    batchSummary: () => {
      const s = scheduler.stats();
      return `batch: ${s.steps} steps, ${(s.rows / Math.max(1, s.steps)).toFixed(2)} rows per step, ${s.running}/${scheduler.batch.maxSequences} sequences in use, ${s.waiting} waiting (${s.queued} queued so far, ${(s.queueWaitMs / Math.max(1, s.queued)).toFixed(0)} ms mean wait)`;
    },
    generate: (prompt, o = {}) => {
      const lane = scheduler.lane(o.signal);
      return releasing(generate(lane, tokenizer, prompt, { eosTokenIds, ...defaults, ...definedOnly(o) }), lane);
    },
    generateChoices: (prompt, n, o = {}) =>
      scheduler.sharedLanes(n, o.signal).map((lane, i) => {
        const seed = o.seed !== undefined ? o.seed + i : undefined;
        return releasing(generate(lane, tokenizer, prompt, { eosTokenIds, ...defaults, ...definedOnly({ ...o, seed }) }), lane);
      }),
  };
}

/** Yields what `gen` yields and releases the lane however the consumer stops (end, break, throw). */
async function* releasing<T>(gen: AsyncGenerator<T, void, undefined>, lane: Lane): AsyncGenerator<T, void, undefined> {
  try {
    yield* gen;
  } finally {
    lane.release();
  }
}

/** The model as the agent's LocalTextModel (which needs a tokenizer for the chat template). */
export function requireTokenizer(model: TextModel): TextModel & { tokenizer: Tokenizer } {
  if (!model.tokenizer) throw new TokenizerError(`${model.name} has no tokenizer (tokenizer.json or tiktoken.model): chat needs one`);
  return model as TextModel & { tokenizer: Tokenizer };
}

/** Drops keys whose value is undefined, so `{temperature: undefined}` does not hide a default. */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
