/**
 * Several sequences on one uploaded model: each sequence is a GpuSession of its own (its latent KV cache, its
 * position, its prefill path) over weights uploaded once, and `step` decodes one token of any set of them in ONE
 * submission with one readback of their token ids (forward.ts BatchRows: linears, router and experts over all rows,
 * attention per row over its own cache). The weights are read once per step whatever the number of rows, which
 * is what makes a step of 8 streams cost little more than a step of one.
 *
 * Batch invariance: a step uses the same kernels for any number of rows (GEMM for one row too, experts by id),
 * and none reduces across rows, so a sequence's tokens are identical whether it runs alone or beside others.
 *
 * Pipelining: a step is recorded and submitted in call order, but its readback is not waited for before the next
 * call is recorded, so up to PIPELINE_DEPTH steps run on the device while the host records the next. A row may
 * leave out its token: the step then reads the token that the sequence's previous step sampled, where that step
 * left it on the GPU (picked[sequence]), so a caller can submit step k + 1 before step k's tokens are read back
 * (the scheduler's lanes do, as generate() does with GpuSession.decodeNext). Prefill, fork and logits calls still
 * wait for their own readback before anything after them is recorded.
 *
 * Legend: B rows in a step (at most S = maxSequences), V vocab, H heads, Dq = Dn + Dr, Dv value head dim.
 */
import { decodeSplitRule, type KernelPlan } from '../gpu/plan.js';
import { ContextOverflowError, DeviceError, InputError } from '../errors.js';
import { createBuffer, UniformArena } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/device.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { createMlaScratch } from '../gpu/ops/attention.js';
import { latentRowsAligned, Recorder, type BatchRows } from './forward.js';
import { expertSourceFor, recordChunk, type OffloadStats } from './expert-offload.js';
import { checkSampledToken } from './sampler.js';
import { attachOffload, checkSampling, checkSessionOptions, GpuSession, pickToken, type SessionOptions } from './session.js';
import { PIPELINE_DEPTH, type StepSampling } from './types.js';
import { uploadWeights, type GpuWeights } from './weights-gpu.js';

export interface BatchSessionOptions extends SessionOptions {
  /** Sequences the session holds at once, each with its own `ctxSize` tokens of cache (default 8). */
  maxSequences?: number;
}

/** One row of a batched step: the next token of an open sequence and how to pick the one after it. */
export interface BatchRow {
  sequence: number;
  /**
   * The row's input token. Left out: the token the sequence's previous step sampled, read on the GPU where that
   * step left it (canContinue(sequence) says whether there is one), without waiting for its readback.
   */
  token?: number;
  sampling: StepSampling;
}

const MAP_READ = 0x0001;
const COPY_DST = 0x0008;
const ARENA_BYTES = 4 << 20;
/** Rows of q and of the attention output are padded to this many floats: 256-byte aligned bindings. */
const ROW_ALIGN_FLOATS = 64;

export async function createBatchSession(gpu: GpuContext, ckpt: Checkpoint, opts: BatchSessionOptions = {}): Promise<BatchSession> {
  const S = opts.maxSequences ?? 8;
  if (!Number.isInteger(S) || S < 1 || S > 64) throw new InputError(`--max-sequences must be an integer in 1..64, got ${S}`, 'maxSequences');
  const c = ckpt.config;
  const { ctx, precision, kernels } = checkSessionOptions(gpu, c, opts);
  const off = opts.offload;
  const source = off ? expertSourceFor(ckpt, off) : null;
  const weights = await uploadWeights(gpu, ckpt, opts.onProgress, { routedExperts: !off });
  const seqs: GpuSession[] = [];
  try {
    // the chunk must hold a whole batch (the step runs through the chunk's activation buffers)
    const chunk = Math.max(opts.chunkSize ?? 128, S);
    // one set of activations for all sequences: their calls never overlap (BatchSession.serial)
    for (let i = 0; i < S; i++) {
      seqs.push(new GpuSession(gpu, kernels, c, weights, ctx, precision, chunk, opts.moeDecodeMaxTokens, opts.uniformArenaBytes ?? ARENA_BYTES, false, seqs[0]));
    }
    const batch = new BatchSession(gpu, weights, seqs);
    if (off && source) {
      try {
        // every row's experts go through the by-id kernels in token-range waves: K slots per layer suffice
        await attachOffload(seqs, batch.gpuBytes(), source, off);
      } catch (err) {
        batch.dispose();
        throw err;
      }
    }
    return batch;
  } catch (err) {
    for (const s of seqs) s.dispose();
    weights.destroy();
    throw err;
  }
}

export class BatchSession {
  readonly maxSequences: number;
  /** Tokens each sequence's cache holds. */
  readonly contextSize: number;
  readonly vocabSize: number;
  private readonly open = new Set<number>();
  private readonly arena: UniformArena;
  private readonly rows: BatchRows;
  /** u32 [S]: the token each sequence's last sampled step picked, at the sequence's index */
  private readonly picked: GPUBuffer;
  private readonly probs: GPUBuffer; // [V]
  /** u32 [S] each, PIPELINE_DEPTH of them: the readbacks of the steps in flight, and the free ones */
  private readonly freeReadbacks: GPUBuffer[] = [];
  private readonly inFlight: Array<Promise<unknown>> = [];
  /** sequences whose last submitted step sampled a token that is still at picked[sequence] */
  private readonly chained = new Set<number>();
  /** the same as callers see it: sequences whose last call was a sampled step (submitted or not yet) */
  private readonly callChained = new Set<number>();
  /** per sequence: steps called and not yet recorded (positions count recorded ones) */
  private readonly queued = new Map<number, number>();
  /** sequences whose step failed while later steps that read its sample on the GPU were in flight: their error */
  private readonly poisoned = new Map<number, unknown>();
  private readonly own: GPUBuffer[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  private disposed = false;

  /** The kernel plan the steps run (src/gpu/plan.ts): batchLinear and moeBatch say how rows are batched. */
  get plan(): KernelPlan {
    return this.seqs[0]!.model.plan;
  }

  constructor(readonly gpu: GpuContext, private readonly weights: GpuWeights, private readonly seqs: GpuSession[]) {
    const first = seqs[0]!;
    this.maxSequences = seqs.length;
    this.contextSize = first.contextSize;
    this.vocabSize = first.vocabSize;
    const S = seqs.length;
    const g = first.model.mla;
    if (S > first.chunk) throw new DeviceError(`a batch of ${S} rows does not fit a prefill chunk of ${first.chunk} tokens (maxStorageBufferBindingSize)`, { limit: 'chunk', value: first.chunk, required: S });
    // aligned latent rows: absorb over all rows at once, q and attn contiguous; else rows padded for per-row bindings
    const latent = latentRowsAligned(g) ? createMlaScratch(gpu, g, S, decodeSplitRule(gpu).maxSplits) : null;
    if (latent) for (const b of [latent.qLat, latent.oLat, latent.partO, latent.partML]) if (b) this.own.push(b);
    const qStride = latent ? g.heads * (g.nope + g.rope) : padTo(g.heads * (g.nope + g.rope), ROW_ALIGN_FLOATS);
    const attnStride = latent ? g.heads * g.v : padTo(g.heads * g.v, ROW_ALIGN_FLOATS);
    const buf = (bytes: number, label: string, usage = 0x0080 | 0x0008 | 0x0004): GPUBuffer => {
      const b = createBuffer(gpu, Math.max(16, bytes), label, usage);
      this.own.push(b);
      return b;
    };
    this.rows = { caches: [], positions: [], q: buf(S * qStride * 4, 'batch.q'), qStride, attn: buf(S * attnStride * 4, 'batch.attn'), attnStride, latent };
    this.picked = buf(S * 4, 'batch.picked');
    this.probs = buf(this.vocabSize * 4, 'batch.probs');
    for (let i = 0; i < PIPELINE_DEPTH; i++) this.freeReadbacks.push(buf(S * 4, `batch.readback.${i}`, MAP_READ | COPY_DST));
    this.arena = new UniformArena(gpu, ARENA_BYTES, 'batch.uniforms');
    this.own.push(this.arena.buffer);
  }

  /** Open sequences. */
  get active(): number {
    return this.open.size;
  }

  /** Whether sequence `id` is free (not open). */
  isFree(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.seqs.length && !this.open.has(id);
  }

  /**
   * Claims a free sequence (position 0; its cache rows keep what they held, see resume), `prefer` when it is
   * free; an InputError when all `maxSequences` are open.
   */
  openSequence(prefer?: number): number {
    this.live();
    const order = prefer !== undefined && this.isFree(prefer) ? [prefer] : [];
    for (let i = 0; i < this.seqs.length; i++) order.push(i);
    for (const i of order) {
      if (!this.open.has(i)) {
        this.open.add(i);
        this.seqs[i]!.reset();
        this.unchain(i);
        this.queued.delete(i);
        return i;
      }
    }
    throw new InputError(`all ${this.seqs.length} sequences are in use (raise --max-sequences or wait for one to finish)`, 'maxSequences');
  }

  /**
   * Takes the first `rows` rows of a just opened sequence's cache as they are, without computing them: what its
   * last user left there (the scheduler's prefix reuse, which knows which tokens those rows hold).
   */
  resume(id: number, rows: number): void {
    this.check(id);
    if (this.seqs[id]!.position !== 0 || this.queuedSteps(id) > 0) throw new InputError(`resume: sequence ${id} is not freshly opened`, 'sequence');
    if (!Number.isInteger(rows) || rows < 0 || rows > this.contextSize) throw new InputError(`resume: ${rows} rows, but a sequence holds ${this.contextSize}`, 'rows');
    this.seqs[id]!.advance(rows);
  }

  closeSequence(id: number): void {
    this.check(id);
    this.open.delete(id);
    this.unchain(id);
  }

  /**
   * Whether a step may leave out sequence `id`'s token (BatchRow.token): the last step submitted for it sampled a
   * token (no prefill, fork or rewind since), it has room for one more, and the session has no expert offloading
   * (whose steps read the router's choices back while they are recorded).
   */
  canContinue(id: number): boolean {
    this.check(id);
    return this.callChained.has(id) && this.seqs[id]!.offload === null && this.seqs[id]!.position + this.queuedSteps(id) < this.contextSize;
  }

  private queuedSteps(id: number): number {
    return this.queued.get(id) ?? 0;
  }

  /**
   * Drops the last `n` tokens of sequence `id` (steps submitted ahead and not needed: a stop token, an abort).
   * Await those steps first.
   */
  rewind(id: number, n: number): void {
    this.check(id);
    if (this.queuedSteps(id) > 0) throw new InputError(`rewind: sequence ${id} has steps not yet run (await them first)`, 'sequence');
    this.seqs[id]!.rewind(n);
    this.unchain(id);
  }

  /** Tokens in sequence `id`'s cache. */
  position(id: number): number {
    this.check(id);
    return this.seqs[id]!.position;
  }

  /** Appends a prompt to sequence `id` and returns the token sampled after it (one submission). */
  prefill(id: number, tokens: number[], sampling: StepSampling): Promise<number> {
    this.check(id);
    this.callChained.delete(id);
    return this.serial(() => {
      this.unchain(id);
      return this.seqs[id]!.prefill(tokens, sampling);
    });
  }

  /** Logits [T, V] of `tokens` appended to sequence `id` (tests and `logits`). */
  forwardLogits(id: number, tokens: number[]): Promise<Float32Array> {
    this.check(id);
    this.callChained.delete(id);
    return this.serial(() => {
      this.unchain(id);
      return this.seqs[id]!.forwardLogits(tokens);
    });
  }

  /**
   * Copies the first `rows` cached tokens of sequence `src` into the empty sequence `dst` (one submission of
   * per-layer buffer copies): n choices of one prompt share its prefill.
   */
  fork(src: number, dst: number, rows: number): Promise<void> {
    this.check(src);
    this.check(dst);
    if (src === dst) throw new InputError('fork: source and destination are the same sequence', 'sequence');
    this.callChained.delete(dst);
    if (this.seqs[dst]!.position !== 0) throw new InputError(`fork: sequence ${dst} is not empty`, 'sequence');
    if (!Number.isInteger(rows) || rows < 0 || rows > this.seqs[src]!.position) {
      throw new InputError(`fork: ${rows} rows, but sequence ${src} holds ${this.seqs[src]!.position}`, 'rows');
    }
    return this.serial(async () => {
      this.gpu.check();
      const from = this.seqs[src]!.model.cache;
      const to = this.seqs[dst]!.model.cache;
      const bytes = rows * from.width * 4;
      const enc = this.gpu.device.createCommandEncoder({ label: 'batch.fork' });
      if (bytes > 0) from.layers.forEach((b, i) => enc.copyBufferToBuffer(b, 0, to.layers[i]!, 0, bytes));
      this.gpu.device.queue.submit([enc.finish()]);
      this.seqs[dst]!.advance(rows);
      this.unchain(dst);
    });
  }

  /**
   * Decodes one token of each row's sequence in one submission; returns the sampled ids in row order. Steps are
   * recorded and submitted in call order; a call does not wait for the readback of the steps before it (see the
   * header), so a caller may have several in flight.
   */
  step(rows: readonly BatchRow[]): Promise<number[]> {
    this.validate(rows, 'call');
    for (const r of rows) {
      this.queued.set(r.sequence, this.queuedSteps(r.sequence) + 1);
      this.callChained.add(r.sequence);
    }
    return this.serial(() => {
      for (const r of rows) {
        const q = this.queuedSteps(r.sequence) - 1;
        if (q > 0) this.queued.set(r.sequence, q);
        else this.queued.delete(r.sequence);
      }
      return this.submitStep(rows);
    }).then((s) => s.done);
  }

  /** As step, but returns the logits [B, V] of the rows instead of sampling (tests, `logits`). */
  stepLogits(rows: ReadonlyArray<Omit<BatchRow, 'sampling'> & { token: number }>): Promise<Float32Array> {
    const full = rows.map((r) => ({ ...r, sampling: { temperature: 0, topK: 0, topP: 1, uniform: 0 } }));
    this.validate(full, 'call');
    for (const r of full) this.callChained.delete(r.sequence);
    return this.serial(() => {
      this.validate(full, 'record');
      return this.recordLogits(full);
    });
  }

  /**
   * Compiles the pipelines that batched steps of 1 .. maxSequences rows use, by recording one step of each size
   * that is never submitted: several kernels take their rows per invocation as a pipeline constant (fp8_gemv_wide's
   * TB), and compiling one on lavapipe takes 50-150 ms, which the first step of each new batch size would
   * otherwise add for every running stream (docs/batching.md "Warm pipelines"). Returns the pipelines compiled.
   * Without offloading only (an offloaded step reads the router's choices back while it is recorded).
   */
  warmUp(): Promise<number> {
    this.live();
    return this.serial(async () => {
      const m = this.seqs[0]!.model;
      if (this.seqs[0]!.offload) return 0;
      const before = m.kernels.pipelineCount;
      const V = this.vocabSize;
      for (let B = 1; B <= this.maxSequences; B++) {
        const batch: BatchRows = { ...this.rows, caches: Array.from({ length: B }, () => m.cache), positions: new Array<number>(B).fill(0) };
        this.arena.reset();
        const rec = new Recorder(m.kernels, this.arena, 'batch-warm-up');
        await recordChunk(m, rec, this.arena, { T: B, p0: 0, logits: 'all', batch }, null);
        for (let b = 0; b < B; b++) {
          pickToken(m.kernels, rec.pass, this.arena, { logits: m.act.logits, logitsOffset: b * V, vocab: V, out: this.picked, outIndex: b, probs: this.probs }, { temperature: 0, topK: 0, topP: 1, uniform: 0 });
        }
        rec.finish(); // dropped: never submitted
      }
      this.arena.reset();
      return m.kernels.pipelineCount - before;
    });
  }

  /** Cumulative expert-offloading counters (all sequences share the slots); null without offloading. */
  offloadStats(): OffloadStats | null {
    return this.seqs[0]!.offloadStats();
  }

  gpuBytes(): number {
    const shared = this.weights.bytes;
    return shared + this.seqs.reduce((a, s) => a + s.gpuBytes() - shared, 0) + this.own.reduce((a, b) => a + b.size, 0);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of this.seqs) s.dispose();
    this.weights.destroy();
    for (const b of this.own) b.destroy();
  }

  /**
   * 'call': as the caller sees the sequence (steps called before count as run); 'record': as it is now that the
   * steps before have been recorded.
   */
  private validate(rows: readonly BatchRow[], when: 'call' | 'record'): void {
    this.live();
    if (rows.length === 0) throw new InputError('a batched step needs at least one row', 'rows');
    const seen = new Set<number>();
    for (const r of rows) {
      this.check(r.sequence);
      if (seen.has(r.sequence)) throw new InputError(`sequence ${r.sequence} appears twice in one step`, 'rows');
      seen.add(r.sequence);
      if (r.token === undefined) {
        const ready = when === 'call' ? this.canContinue(r.sequence) : this.chained.has(r.sequence) && this.seqs[r.sequence]!.offload === null;
        if (!ready) {
          throw new InputError(`sequence ${r.sequence} has no token sampled on the GPU to continue from (after a prefill, fork or rewind, or with expert offloading, give the row its token)`, 'token');
        }
      } else if (!Number.isInteger(r.token) || r.token < 0 || r.token >= this.vocabSize) {
        throw new InputError(`token id ${r.token} is outside the vocabulary (vocab_size ${this.vocabSize}: ids 0..${this.vocabSize - 1})`, 'tokens');
      }
      const pos = this.seqs[r.sequence]!.position + (when === 'call' ? this.queuedSteps(r.sequence) : 0);
      if (pos + 1 > this.contextSize) throw new ContextOverflowError(pos + 1, this.contextSize, `sequence ${r.sequence}`);
      checkSampling(r.sampling);
    }
  }

  private unchain(id: number): void {
    this.chained.delete(id);
    this.callChained.delete(id);
    this.poisoned.delete(id);
  }

  /**
   * Records the forward pass of a batched step into a new Recorder: host-given tokens go to tokens[0 .. B-1] of
   * the first sequence's buffer (a step reads only what it writes there), a row without one gets its sequence's
   * last sample copied there on the GPU.
   */
  private async recordForward(rows: readonly BatchRow[]): Promise<{ rec: Recorder; batch: BatchRows }> {
    this.gpu.check();
    const m = this.seqs[0]!.model;
    this.gpu.device.queue.writeBuffer(m.act.tokens, 0, Uint32Array.from(rows.map((r) => r.token ?? 0)));
    const batch: BatchRows = {
      ...this.rows,
      caches: rows.map((r) => this.seqs[r.sequence]!.model.cache),
      positions: rows.map((r) => this.seqs[r.sequence]!.position),
    };
    this.arena.reset();
    const rec = new Recorder(m.kernels, this.arena, 'batch-step');
    rows.forEach((r, b) => {
      if (r.token === undefined) rec.copy(this.picked, r.sequence * 4, m.act.tokens, b * 4, 4);
    });
    await recordChunk(m, rec, this.arena, { T: rows.length, p0: 0, logits: 'all', batch }, this.seqs[0]!.offload);
    return { rec, batch };
  }

  /**
   * Records and submits one sampled step; `done` reads its tokens back. The positions advance at submission (the
   * next step is recorded after them); a step that fails takes its rows back out, and so does every later step in
   * flight that read one of its samples on the GPU.
   */
  private async submitStep(rows: readonly BatchRow[]): Promise<{ done: Promise<number[]> }> {
    this.validate(rows, 'record'); // again: what ran since the call (a failed step, a prefill) may have changed
    const readback = await this.takeReadback();
    let submitted = false;
    try {
      const m = this.seqs[0]!.model;
      const V = this.vocabSize;
      const { rec, batch } = await this.recordForward(rows);
      rows.forEach((r, b) => {
        pickToken(m.kernels, rec.pass, this.arena, { logits: m.act.logits, logitsOffset: b * V, vocab: V, out: this.picked, outIndex: r.sequence, probs: this.probs }, r.sampling);
      });
      rec.copy(this.picked, 0, readback, 0, this.maxSequences * 4);
      this.arena.flush();
      this.gpu.device.queue.submit([rec.finish()]);
      submitted = true;
      const readsChain = rows.filter((r) => r.token === undefined).map((r) => r.sequence);
      for (const r of rows) {
        this.seqs[r.sequence]!.advance(1);
        this.chained.add(r.sequence);
        if (r.token !== undefined) this.poisoned.delete(r.sequence);
      }
      const done = this.readTokens(rows, batch.positions, readback, readsChain);
      const settled = done.then(
        () => undefined,
        () => undefined,
      );
      this.inFlight.push(settled);
      void settled.then(() => {
        this.inFlight.splice(this.inFlight.indexOf(settled), 1);
        this.freeReadbacks.push(readback);
      });
      return { done };
    } finally {
      if (!submitted) this.freeReadbacks.push(readback);
    }
  }

  /** A free readback buffer, after the oldest step in flight is read back when all are in use. */
  private async takeReadback(): Promise<GPUBuffer> {
    while (this.freeReadbacks.length === 0) await this.inFlight[0];
    return this.freeReadbacks.pop()!;
  }

  private async readTokens(rows: readonly BatchRow[], positions: readonly number[], readback: GPUBuffer, readsChain: number[]): Promise<number[]> {
    try {
      try {
        await readback.mapAsync(MAP_READ);
      } catch (err) {
        this.gpu.check();
        throw new DeviceError(`readback failed: ${(err as Error).message}`, { reason: 'map' });
      }
      const raw = new Uint32Array(readback.getMappedRange(0, this.maxSequences * 4).slice(0));
      readback.unmap();
      // a sample this step read on the GPU came from a step that failed: its rows are as wrong
      for (const s of readsChain) if (this.poisoned.has(s)) throw this.poisoned.get(s);
      return rows.map((r, b) => checkSampledToken(raw[r.sequence]!, this.vocabSize, positions[b]));
    } catch (err) {
      for (const r of rows) {
        if (!this.open.has(r.sequence)) continue;
        const seq = this.seqs[r.sequence]!;
        if (seq.position > 0) seq.rewind(1);
        this.chained.delete(r.sequence);
        this.callChained.delete(r.sequence);
        this.poisoned.set(r.sequence, err);
      }
      throw err;
    }
  }

  /** Records one step that returns the logits [B, V] of its rows (no sampling); waits for them. */
  private async recordLogits(rows: readonly BatchRow[]): Promise<Float32Array> {
    const B = rows.length;
    const V = this.vocabSize;
    const m = this.seqs[0]!.model;
    const { rec } = await this.recordForward(rows);
    const target = createBuffer(this.gpu, B * V * 4, 'batch.logits.readback', MAP_READ | COPY_DST);
    try {
      rec.copy(m.act.logits, 0, target, 0, B * V * 4);
      this.arena.flush();
      this.gpu.device.queue.submit([rec.finish()]);
      try {
        await target.mapAsync(MAP_READ);
      } catch (err) {
        this.gpu.check();
        throw new DeviceError(`readback failed: ${(err as Error).message}`, { reason: 'map' });
      }
      const out = new Float32Array(target.getMappedRange(0, B * V * 4).slice(0));
      target.unmap();
      for (const r of rows) {
        this.seqs[r.sequence]!.advance(1);
        this.unchain(r.sequence);
      }
      return out;
    } finally {
      target.destroy();
    }
  }

  /** Runs `f` after every earlier call: one step at a time on the shared activation buffers. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.tail.then(f, f);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || !this.open.has(id)) throw new InputError(`sequence ${id} is not open`, 'sequence');
  }

  private live(): void {
    if (this.disposed) throw new DeviceError('the session was disposed', { reason: 'disposed' });
  }
}

function padTo(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}
