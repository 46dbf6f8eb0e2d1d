/**
 * An InferenceSession on the CPU reference (src/model/reference.ts, f64) with the CPU sampling rule
 * (sampler.ts): `webmoe generate --backend cpu`. It needs no adapter, so the CLI, the generate loop and the
 * tokenizers can be run and tested anywhere; the WebGPU engine (session.ts) is the fast path.
 *
 * V vocab, C context size.
 */
import { ContextOverflowError, InputError, WebmoeError } from '../errors.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { loadCpuWeights, type CpuWeights } from '../model/cpu-weights.js';
import { ReferenceSession } from '../model/reference.js';
import { sampleToken } from './sampler.js';
import type { InferenceSession, StepSampling } from './types.js';

export async function createCpuSession(ckpt: Checkpoint, opts: { ctxSize?: number } = {}): Promise<InferenceSession> {
  const c = ckpt.config;
  const ctx = opts.ctxSize ?? Math.min(c.max_position_embeddings, 4096);
  // the same checks, and messages, as the GPU session's (session.ts createSession), before any weight is read
  if (!Number.isInteger(ctx) || ctx < 1) throw new InputError(`--ctx-size must be a positive integer, got ${ctx}`, 'ctxSize');
  if (ctx > c.max_position_embeddings) {
    throw new InputError(`--ctx-size ${ctx} exceeds the model's max_position_embeddings ${c.max_position_embeddings}`, 'ctxSize');
  }
  const weights = await loadCpuWeights(ckpt);
  return new CpuReferenceSession(weights, ctx);
}

class CpuReferenceSession implements InferenceSession {
  readonly vocabSize: number;
  private ref: ReferenceSession;
  private disposed = false;

  constructor(
    private readonly weights: CpuWeights,
    readonly contextSize: number,
  ) {
    this.vocabSize = weights.config.vocab_size;
    this.ref = new ReferenceSession(weights);
  }

  get position(): number {
    return this.ref.position;
  }

  reset(): void {
    this.ref = new ReferenceSession(this.weights);
  }

  private run(tokens: number[]): Float64Array {
    if (this.disposed) throw new WebmoeError('DISPOSED', 'the CPU session was used after dispose()');
    if (this.position + tokens.length > this.contextSize) throw new ContextOverflowError(this.position + tokens.length, this.contextSize);
    return this.ref.prefill(tokens); // [T, V]
  }

  async prefill(tokens: number[], sampling: StepSampling): Promise<number> {
    await nextMacrotask();
    const logits = this.run(tokens);
    return sampleToken(logits.subarray((tokens.length - 1) * this.vocabSize), sampling, this.position - 1);
  }

  async decode(token: number, sampling: StepSampling): Promise<number> {
    await nextMacrotask();
    return sampleToken(this.run([token]), sampling, this.position - 1);
  }

  async forwardLogits(tokens: number[]): Promise<Float32Array> {
    await nextMacrotask();
    return Float32Array.from(this.run(tokens));
  }

  gpuBytes(): number {
    return 0;
  }

  dispose(): void {
    this.disposed = true;
  }
}

/**
 * Lets the event loop run between steps. A GPU step awaits mapAsync and so reaches the event loop anyway; a CPU
 * step is pure computation, and without this a whole generation runs in one macrotask: a client's disconnect,
 * an AbortSignal from a timer, SIGINT or SIGTERM would only be seen when it has finished.
 */
function nextMacrotask(): Promise<void> {
  if (typeof setImmediate === 'function') return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      ch.port1.close();
      resolve();
    };
    ch.port2.postMessage(null);
  });
}
