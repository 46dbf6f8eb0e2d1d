/**
 * Small deterministic CPU implementations of InferenceSession, for testing the generate loop without a GPU:
 *   - BigramSession: logits of the next token are a seeded table row of the last token ("a bigram model"),
 *     sampled with the CPU reference of the GPU's sampling rule (sampler.ts), as the engine samples on the GPU;
 *   - ScriptSession: returns a fixed sequence of tokens, whatever the input (stop strings, UTF-8 streaming).
 * Both keep a real KV position and enforce the context size, and count their calls.
 */
import { sampleToken } from '../../../src/engine/sampler.js';
import type { InferenceSession, StepSampling } from '../../../src/engine/types.js';
import { rng } from '../../helpers/gpu.js';

abstract class CpuSession implements InferenceSession {
  position = 0;
  calls = { prefill: 0, decode: 0, reset: 0, dispose: 0 };
  /** Every StepSampling received, in order. */
  readonly samplings: StepSampling[] = [];
  /** When set, each decode waits for this before returning (abort tests). */
  gate?: () => Promise<void>;
  disposed = false;

  constructor(
    readonly vocabSize: number,
    readonly contextSize: number,
  ) {}

  protected abstract next(last: number, sampling: StepSampling): number;

  reset(): void {
    this.calls.reset++;
    this.position = 0;
  }

  private append(n: number): void {
    if (this.disposed) throw new Error('session used after dispose');
    if (this.position + n > this.contextSize) throw new Error(`KV cache overflow: ${this.position} + ${n} > ${this.contextSize}`);
    this.position += n;
  }

  async prefill(tokens: number[], sampling: StepSampling): Promise<number> {
    this.calls.prefill++;
    this.append(tokens.length);
    this.samplings.push(sampling);
    await Promise.resolve();
    return this.next(tokens[tokens.length - 1]!, sampling);
  }

  async decode(token: number, sampling: StepSampling): Promise<number> {
    this.calls.decode++;
    this.append(1);
    this.samplings.push(sampling);
    if (this.gate) await this.gate();
    else await Promise.resolve();
    return this.next(token, sampling);
  }

  async forwardLogits(): Promise<Float32Array> {
    throw new Error('not used');
  }

  gpuBytes(): number {
    return 12345;
  }

  dispose(): void {
    if (this.disposed) throw new Error('disposed twice');
    this.calls.dispose++;
    this.disposed = true;
  }
}

export class BigramSession extends CpuSession {
  readonly table: Float32Array; // [V, V]

  constructor(vocabSize: number, contextSize: number, seed = 1, scale = 3) {
    super(vocabSize, contextSize);
    const r = rng(seed);
    this.table = Float32Array.from({ length: vocabSize * vocabSize }, () => scale * (r() * 2 - 1));
  }

  logits(last: number): Float32Array {
    return this.table.subarray(last * this.vocabSize, (last + 1) * this.vocabSize);
  }

  protected next(last: number, sampling: StepSampling): number {
    return sampleToken(this.logits(last), sampling);
  }
}

export class ScriptSession extends CpuSession {
  private i = 0;
  constructor(
    private readonly script: number[],
    vocabSize = 512,
    contextSize = 4096,
  ) {
    super(vocabSize, contextSize);
  }

  override reset(): void {
    super.reset();
    this.i = 0;
  }

  protected next(): number {
    const t = this.script[this.i++];
    if (t === undefined) throw new Error('script exhausted');
    return t;
  }
}
