/** Messages between the page (main.ts) and the engine's Web Worker (worker.ts). */
import type { OffloadStats } from '../src/engine/expert-offload.js';
import type { GenerationStats } from '../src/engine/types.js';
import type { ExpertStoreStats } from './opfs-experts.js';

export type Backend = 'webgpu' | 'cpu';

export interface GenerateRequest {
  /** Text (needs a tokenizer) or token ids. */
  prompt: string | number[];
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  ignoreEos?: boolean;
  /** Also report a StepSnapshot before the generation and after every token (`done.steps`; URL parameter step-stats=1). */
  stepStats?: boolean;
}

/**
 * The session's cumulative counters at one point of a generation: before it (`token` -1) and after each token
 * (`token` i: the i-th generated token has been sampled). Benchmarks subtract two of them (subtractOffloadStats) to
 * time a window of decode steps, leaving out the prefill and the steps that compile pipelines.
 */
export interface StepSnapshot {
  token: number;
  /** performance.now() in the worker, ms */
  ms: number;
  /** the session's offload counters (cumulative, since the load) */
  offload?: OffloadStats;
  /** the expert store's counters (cumulative, since the load) */
  experts?: ExpertStoreStats;
}

/** Timeouts of a URL load, in milliseconds (default 30 000 each; page parameters connect-timeout, idle-timeout). */
export interface HttpTimeouts {
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
}

export type ToWorker =
  | {
      type: 'load';
      source: { url: string } | { files: File[] };
      backend: Backend;
      ctxSize?: number;
      http?: HttpTimeouts;
      /** Expert offloading: every GPU allocation within this many MiB (fractional allowed); absent: no cap. */
      gpuMemoryMiB?: number;
    }
  | { type: 'generate'; request: GenerateRequest }
  | { type: 'stop' }
  | { type: 'clear-cache' };

export interface LoadedInfo {
  name: string;
  backend: Backend;
  adapter: string;
  gpuBytes: number;
  contextSize: number;
  vocabSize: number;
  hasTokenizer: boolean;
  /** Bytes that came from the network / from the OPFS cache while loading (URL sources). */
  networkBytes: number;
  cachedBytes: number;
  loadMs: number;
  /** Set when the model was loaded with a GPU memory budget (expert offloading). */
  offload?: OffloadInfo;
}

export interface OffloadInfo {
  /** The budget, in bytes. */
  budgetBytes: number;
  slotsPerLayer: number;
  experts: number;
  /** False when every expert fits the budget (no streaming). */
  streaming: boolean;
  /** Where streamed experts come from, for people ("the OPFS expert store", "the picked folder", ...). */
  source: string;
}

export type FromWorker =
  | { type: 'progress'; phase: 'open' | 'weights' | 'ready'; loadedBytes: number; totalBytes: number; networkBytes: number }
  /** Bytes downloaded so far, sent as they arrive (before the weights phase: config, tokenizer, headers). */
  | { type: 'download'; networkBytes: number }
  | { type: 'loaded'; info: LoadedInfo }
  | { type: 'token'; token: number; text: string; index: number; elapsedMs: number; special: boolean }
  /** While a budgeted load fills the expert slots: slots filled of all, and the expert store's counters (URL loads). */
  | { type: 'experts'; done: number; total: number; store?: ExpertStoreStats }
  /** `offload`: the generation's expert offloading line (formatOffload); `experts`: the store's counters since the load. */
  | { type: 'done'; tokens: number[]; text: string; stats: GenerationStats; seed: number; offload?: string; experts?: ExpertStoreStats; steps?: StepSnapshot[] }
  | { type: 'cleared' }
  | { type: 'error'; name: string; message: string };
