/** Messages between the page (main.ts) and the engine's Web Worker (worker.ts). */
import type { GenerationStats } from '../src/engine/types.js';

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
}

/** Timeouts of a URL load, in milliseconds (default 30 000 each; page parameters connect-timeout, idle-timeout). */
export interface HttpTimeouts {
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
}

export type ToWorker =
  | { type: 'load'; source: { url: string } | { files: File[] }; backend: Backend; ctxSize?: number; http?: HttpTimeouts }
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
}

export type FromWorker =
  | { type: 'progress'; phase: 'open' | 'weights' | 'ready'; loadedBytes: number; totalBytes: number; networkBytes: number }
  /** Bytes downloaded so far, sent as they arrive (before the weights phase: config, tokenizer, headers). */
  | { type: 'download'; networkBytes: number }
  | { type: 'loaded'; info: LoadedInfo }
  | { type: 'token'; token: number; text: string; index: number; elapsedMs: number; special: boolean }
  | { type: 'done'; tokens: number[]; text: string; stats: GenerationStats; seed: number }
  | { type: 'cleared' }
  | { type: 'error'; name: string; message: string };
