/**
 * The engine's public streaming types, shared by `generate`, the CLI, the server and the agent.
 * Kept free of GPU imports so the agent and server can be type-checked and tested on their own.
 */
import type { OffloadStats } from './expert-offload.js';

/**
 * Progress of loading a model, the one progress type of a load: loadTextModel reports it from the bytes read
 * through the checkpoint's byte sources (the CLI's and the page's bars), uploadWeights (createSession's
 * `onProgress`) from the stored bytes of the leaves it has uploaded.
 */
export interface LoadProgress {
  /** 'open': reading config and headers; 'weights': reading tensors to the device; 'ready': done. */
  phase: 'open' | 'weights' | 'ready';
  loadedBytes: number;
  totalBytes: number;
}

export interface SamplingOptions {
  /** 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 or undefined = off. */
  topK?: number;
  /** Nucleus sampling; 1 or undefined = off. */
  topP?: number;
  /** Makes sampling reproducible. */
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions {
  maxTokens?: number;
  /** Token ids that end generation (default: the checkpoint's eos ids). */
  stopTokens?: number[];
  /** Strings that end generation; the stop string itself is not emitted. */
  stopStrings?: string[];
  ignoreEos?: boolean;
  signal?: AbortSignal;
}

export interface TokenEvent {
  type: 'token';
  /** The sampled token id. */
  token: number;
  /** The text this token adds (complete UTF-8 characters only; may be ''). */
  text: string;
  /** Index of the token among generated tokens, from 0. */
  index: number;
  /** Milliseconds since generation started. */
  elapsedMs: number;
}

export interface GenerationStats {
  promptTokens: number;
  generatedTokens: number;
  /** Time to first token, ms (prefill + first sample). */
  ttftMs: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  totalMs: number;
  gpuBytes: number;
  finishReason: 'stop' | 'length' | 'abort';
  /** Expert offloading (a session with a GPU memory budget): this generation's hits, misses, stalls, bytes. */
  offload?: OffloadStats;
}

export interface DoneEvent {
  type: 'done';
  tokens: number[];
  text: string;
  stats: GenerationStats;
}

export type GenerationEvent = TokenEvent | DoneEvent;

/**
 * Per-step sampling parameters, consumed by the GPU sampling kernel. `uniform` is the random number in [0, 1)
 * for this step, drawn on the CPU from the seeded generator so runs are reproducible (generate.ts owns it).
 */
export interface StepSampling {
  temperature: number; // 0 = greedy
  topK: number; // 0 = off
  topP: number; // 1 = off
  uniform: number;
}

/**
 * A model loaded on a device with its latent KV cache: what `generate` drives. The GPU engine (src/engine/)
 * implements it; each call is one queue submission with one readback (the sampled token, or logits when asked).
 */
/**
 * Steps decodeNext may have submitted and not yet read back: one running on the device while the host records
 * the next (docs/benchmarks.md "Pipelined decode"); a stop found in step k wastes the steps submitted after it.
 */
export const PIPELINE_DEPTH = 2;

export interface InferenceSession {
  readonly contextSize: number;
  /** Tokens currently in the KV cache. */
  readonly position: number;
  readonly vocabSize: number;
  /** Empties the KV cache. */
  reset(): void;
  /** Appends `tokens` to the cache (prefill, chunked internally) and samples the token that follows them. */
  prefill(tokens: number[], sampling: StepSampling): Promise<number>;
  /** Appends one token and samples the next. */
  decode(token: number, sampling: StepSampling): Promise<number>;
  /**
   * Pipelined decode (optional; the WebGPU session): appends the token the last submitted step sampled, without the
   * host having read it back, so the next step can be submitted while the device still runs this one. Only while
   * `canDecodeNext`; `rewind` drops the tokens of steps submitted ahead and not needed. generate.ts uses it.
   */
  decodeNext?(sampling: StepSampling): Promise<number>;
  readonly canDecodeNext?: boolean;
  rewind?(tokens: number): void;
  /** Appends tokens and returns their logits [tokens.length, vocab] (for `webmoe logits` and tests). */
  forwardLogits(tokens: number[]): Promise<Float32Array>;
  /** Bytes of GPU memory this session holds (weights + cache + scratch). */
  gpuBytes(): number;
  /** Cumulative expert-offloading counters since the session was created; absent or null without offloading. */
  offloadStats?(): OffloadStats | null;
  dispose(): void;
}
