/**
 * The WebGPU inference session: a checkpoint uploaded to a device (weights-gpu.ts), its latent KV cache
 * (kv-cache.ts), the activation buffers, and prefill / decode steps recorded by forward.ts.
 *
 * Each call is ONE queue submission with at most one readback: `decode` and `prefill` read back the 4-byte
 * token id sampled on the GPU (ops/sample.ts), `forwardLogits` the logits [T, V]. A long prompt is prefilled
 * in chunks of at most `chunk` tokens, all recorded into the same command buffer (only a prompt whose chunks
 * outgrow the uniform arena is split over several submissions, still with one readback). Taps (debugging)
 * add one more readback of the tapped tensors.
 *
 * Legend: T tokens, D hidden, V vocab, ctx context size.
 */
import { ConfigError, ContextOverflowError, DeviceError, InputError } from '../errors.js';
import { createBuffer, UniformArena } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/device.js';
import { Kernels } from '../gpu/kernels.js';
import { attentionTileFloats, createMlaScratch, type MlaGeometry } from '../gpu/ops/attention.js';
import type { GemmVariant } from '../gpu/ops/linear.js';
import { decodeSplitRule, planKernels } from '../gpu/plan.js';
import { createMoeScratch, MOE_MAX_EXPERTS, MOE_MAX_GROUPS, MOE_MAX_TOPK, slotsPerToken, type MoeGeometry } from '../gpu/ops/moe.js';
import { sampleToken, type PickArgs } from '../gpu/ops/sample.js';
import { uploadRopeTable } from '../gpu/ops/rope.js';
import { ropeTables } from '../model/rope.js';
import type { Checkpoint } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import type { TapMap } from '../model/taps.js';
import { Recorder, type Activations, type GpuModel, type TapSink } from './forward.js';
import { bindResidentSlots, ExpertOffload, expertSourceFor, offloadFixedBytes, recordChunk, recordResidentChunk, slotBytes, type OffloadOptions, type OffloadStats } from './expert-offload.js';
import type { ExpertShape, ExpertSource } from '../offload/expert-source.js';
import { LatentKvCache } from './kv-cache.js';
import { checkSampledToken } from './sampler.js';
import { PIPELINE_DEPTH, type InferenceSession, type LoadProgress, type StepSampling } from './types.js';
import { stackedLatentWidth, uploadWeights, type GpuWeights } from './weights-gpu.js';

export type Precision = 'f32' | 'f16';

export interface SessionOptions {
  /** Tokens the latent KV cache holds; default min(max_position_embeddings, 4096). */
  ctxSize?: number;
  /** 'f16' (opt-in) forms the FP8 GEMV/GEMM products in f16 (needs `shader-f16`); default 'f32'. */
  precision?: Precision;
  /** Most tokens per prefill chunk (default 128; lowered to fit the binding limit). */
  chunkSize?: number;
  /** Called after each uploaded leaf of the weight tree: stored bytes read so far and in all (phase 'weights'). */
  onProgress?: (p: LoadProgress) => void;
  /** Chunks of up to this many tokens run the MoE experts by id (decode kernels) instead of grouped (default 4). */
  moeDecodeMaxTokens?: number;
  /** Size of the per-step uniform arena (default 4 MiB); a prompt whose chunks outgrow it takes several submissions. */
  uniformArenaBytes?: number;
  /**
   * Expert offloading (engine/expert-offload.ts, docs/offloading.md): every GPU allocation of the session stays
   * within `offload.gpuMemory` bytes; routed experts that do not fit live in per-layer slots filled on demand.
   */
  offload?: OffloadOptions;
}

const MAP_READ = 0x0001;
const COPY_DST = 0x0008;
const STORAGE_RW = 0x0080 | 0x0008 | 0x0004;
const ARENA_BYTES = 4 << 20;


/** Uploads `ckpt` to `gpu` and returns a session ready to prefill. */
export async function createSession(gpu: GpuContext, ckpt: Checkpoint, opts: SessionOptions = {}): Promise<GpuSession> {
  const c = ckpt.config;
  const { ctx, precision, kernels } = checkSessionOptions(gpu, c, opts);
  const off = opts.offload;
  const source = off ? expertSourceFor(ckpt, off) : null;
  const weights = await uploadWeights(gpu, ckpt, opts.onProgress, { routedExperts: !off });
  let session: GpuSession;
  try {
    session = new GpuSession(gpu, kernels, c, weights, ctx, precision, opts.chunkSize ?? 128, opts.moeDecodeMaxTokens, opts.uniformArenaBytes ?? ARENA_BYTES);
  } catch (err) {
    weights.destroy();
    throw err;
  }
  if (off && source) {
    try {
      await attachOffload([session], session.gpuBytes(), source, off);
    } catch (err) {
      session.dispose();
      throw err;
    }
  }
  return session;
}

/**
 * GPU bytes a session over `ckpt` holds without routed experts (weights, KV cache, activations, scratch), and its
 * chunk: what createSession with `offload` measures before it sizes the slots (tests and the bench size budgets
 * from it). Uploads the resident weights once and frees them.
 */
export async function residentBytes(gpu: GpuContext, ckpt: Checkpoint, opts: SessionOptions = {}): Promise<{ bytes: number; chunk: number }> {
  const { ctx, precision, kernels } = checkSessionOptions(gpu, ckpt.config, opts);
  const weights = await uploadWeights(gpu, ckpt, undefined, { routedExperts: false });
  let s: GpuSession;
  try {
    s = new GpuSession(gpu, kernels, ckpt.config, weights, ctx, precision, opts.chunkSize ?? 128, opts.moeDecodeMaxTokens, opts.uniformArenaBytes ?? ARENA_BYTES);
  } catch (err) {
    weights.destroy();
    throw err;
  }
  try {
    return { bytes: s.gpuBytes(), chunk: s.chunk };
  } finally {
    s.dispose();
  }
}

/**
 * Puts the routed experts into slots sized by the budget, for sessions that share one upload of the weights (one
 * session, or the sequences of a BatchSession): `fixed` is what they hold without routed experts. S = E fills the
 * slots once and runs today's one-submission path (unless `streaming`); S < E streams experts per MoE layer.
 * The first session owns the slots and the source (its dispose releases them).
 */
export async function attachOffload(sessions: readonly GpuSession[], fixed: number, source: ExpertSource, opts: OffloadOptions): Promise<ExpertOffload> {
  const first = sessions[0]!;
  const budget = opts.gpuMemory;
  if (!Number.isFinite(budget) || budget <= 0) throw new InputError(`--gpu-memory must be a positive number of MiB, got ${budget / 2 ** 20}`, 'gpuMemory');
  if (!first.model.moe) throw new InputError('--gpu-memory: this model has no MoE layers, so there is nothing to offload', 'gpuMemory');
  const c = first.config;
  const limit = Math.min(first.gpu.limits.maxStorageBufferBindingSize, first.gpu.limits.maxBufferSize);
  const S = slotsForBudget(c, source.shape, budget, fixed + offloadFixedBytes(c, first.chunk), limit);
  const o = new ExpertOffload(first.gpu, c, source, S, first.chunk, opts);
  for (const [i, s] of sessions.entries()) s.useOffload(o, i === 0 ? source : null);
  if (!o.streaming) bindResidentSlots(first.model.weights, o);
  await o.preload();
  return o;
}

/**
 * The expert slots per MoE layer that `budget` bytes leave after `fixed` bytes (resident weights, cache,
 * activations, the offload buffers): the most S ≤ E whose slots fit, or a typed error naming the minimum budget
 * (K slots per layer).
 */
export function slotsForBudget(c: ModelConfig, shape: ExpertShape, budget: number, fixed: number, maxBinding: number): number {
  const E = c.n_routed_experts;
  const K = c.num_experts_per_tok;
  const layers = c.derived.moeLayers.filter(Boolean).length;
  const need = (S: number) => fixed + layers * slotBytes(shape, c, S, maxBinding);
  let lo = 0;
  let hi = E;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (need(mid) <= budget) lo = mid;
    else hi = mid - 1;
  }
  if (lo < K) {
    const mib = (b: number) => (b / 2 ** 20).toFixed(2);
    throw new InputError(
      `--gpu-memory ${mib(budget)} MiB is below this model's minimum of ${mib(need(K))} MiB: the resident part (attention, dense layers, shared experts, routers, embeddings, KV cache, activations) takes ${mib(fixed)} MiB and each of the ${layers} MoE layers needs at least ${K} expert slots (${mib(slotBytes(shape, c, K, maxBinding))} MiB); raise --gpu-memory or lower --ctx-size`,
      'gpuMemory',
    );
  }
  return lo;
}

/**
 * The checks every session makes before anything is uploaded (single-sequence and batched): the context size
 * against the model, the f16 path against the adapter, the kernels' fixed bounds.
 */
export function checkSessionOptions(gpu: GpuContext, c: ModelConfig, opts: SessionOptions): { ctx: number; precision: Precision; kernels: Kernels } {
  const ctx = opts.ctxSize ?? Math.min(c.max_position_embeddings, 4096);
  if (!Number.isInteger(ctx) || ctx < 1) throw new InputError(`--ctx-size must be a positive integer, got ${ctx}`, 'ctxSize');
  if (ctx > c.max_position_embeddings) {
    throw new InputError(`--ctx-size ${ctx} exceeds the model's max_position_embeddings ${c.max_position_embeddings}`, 'ctxSize');
  }
  const precision = opts.precision ?? 'f32';
  const kernels = kernelsFor(gpu);
  if (precision === 'f16' && !(kernels.available('fp8_gemv_f16') && kernels.available('fp8_gemm_f16'))) {
    throw new DeviceError(`--precision f16 needs the 'shader-f16' feature, which this adapter (${gpu.info.description || gpu.info.device}) lacks; use --precision f32`, { reason: 'feature' });
  }
  checkKernelLimits(gpu, c);
  return { ctx, precision, kernels };
}

/**
 * The kernels' fixed bounds, checked before anything is uploaded so that a model beyond them fails at session
 * creation with the bound named (not with a ShapeError at the first step): the MoE router's workgroup arrays
 * (experts, top-k, groups) and the attention kernel's cache tile, which must hold one latent row of R + Dr
 * floats (the device's workgroup memory; 1024 floats on software adapters), with ⌈R / 64⌉ ≤ 64 accumulators per
 * thread.
 */
export function checkKernelLimits(gpu: GpuContext, c: ModelConfig): void {
  if (c.derived.moeLayers.some(Boolean)) {
    const bound = (field: string, value: number, max: number, what: string) => {
      if (value > max) throw new ConfigError(`${field} = ${value}: the GPU MoE router supports at most ${max} ${what} (${limitName(field)})`, field, value);
    };
    bound('n_routed_experts', c.n_routed_experts, MOE_MAX_EXPERTS, 'routed experts');
    bound('num_experts_per_tok', c.num_experts_per_tok, MOE_MAX_TOPK, 'experts per token');
    bound('n_group', c.n_group, MOE_MAX_GROUPS, 'expert groups');
  }
  const L = c.kv_lora_rank + c.qk_rope_head_dim;
  const tile = attentionTileFloats(gpu);
  if (L > tile || Math.ceil(c.kv_lora_rank / 64) > 64) {
    throw new DeviceError(
      `kv_lora_rank + qk_rope_head_dim = ${L}: the MLA attention kernel stages one latent cache row in workgroup memory and this adapter allows ${tile} floats (kv_lora_rank at most 4096)`,
      { limit: 'mla_attention cache tile (floats)', value: tile, required: L },
    );
  }
}

function limitName(field: string): string {
  return { n_routed_experts: 'MOE_MAX_EXPERTS', num_experts_per_tok: 'MOE_MAX_TOPK', n_group: 'MOE_MAX_GROUPS' }[field] ?? field;
}

const registries = new WeakMap<GpuContext, Kernels>();
/** One kernel registry (pipeline cache) per device, shared by its sessions: pipelines compile once. */
export function kernelsFor(gpu: GpuContext): Kernels {
  let k = registries.get(gpu);
  if (!k) {
    k = new Kernels(gpu);
    registries.set(gpu, k);
  }
  return k;
}

/** Widest per-token row of any activation buffer, in floats (sizes the prefill chunk). */
function widestRow(c: ModelConfig, g: MlaGeometry, mg: MoeGeometry | null): number {
  const d = c.derived;
  const widths = [c.hidden_size, stackedLatentWidth(c), d.qWidth, d.kvAWidth, d.oWidth, c.intermediate_size, c.vocab_size, g.heads * (g.rank + g.rope)];
  if (mg) widths.push(mg.experts, slotsPerToken(mg) * Math.max(mg.inter, mg.sharedInter), slotsPerToken(mg) * mg.hidden);
  return Math.max(...widths);
}

export class GpuSession implements InferenceSession {
  readonly contextSize: number;
  readonly vocabSize: number;
  /** Most tokens recorded per chunk. */
  readonly chunk: number;
  readonly model: GpuModel;
  private pos = 0;
  private disposed = false;
  private readonly arena: UniformArena;
  private readonly scratch: GPUBuffer[] = [];
  private readonly probs: GPUBuffer;
  private readonly picked: GPUBuffer;
  /** PIPELINE_DEPTH of them, used in turn: a pipelined step reads its token back while the next ones are submitted */
  private readonly tokenReadbacks: GPUBuffer[];
  private nextReadback = 0;
  /** a step is being recorded (recording is never interleaved) */
  private recording = false;
  /** submitted steps whose results are not read back yet (at most 1, or PIPELINE_DEPTH with decodeNext) */
  private inFlight = 0;
  /** the token sampled by the last submitted step is on the GPU at tokens[pos] (decodeNext can run) */
  private chainReady = false;
  /** Expert offloading, when the session was created with a budget. */
  offload: ExpertOffload | null = null;
  private offloadSource: ExpertSource | null = null;

  /**
   * `ownsWeights` false: the weights are shared with other sessions (the sequences of a BatchSession) and are not
   * destroyed by dispose(). `scratchOf`: reuse that session's activations, RoPE table, sampling buffers and uniform
   * arena (same context size and chunk) and allocate only a KV cache: for sequences whose steps never overlap
   * (a BatchSession runs one call at a time), so S sequences hold one set of activations, not S.
   */
  constructor(readonly gpu: GpuContext, kernels: Kernels, readonly config: ModelConfig, weights: GpuWeights, ctx: number, readonly precision: Precision, chunkSize: number, moeDecodeMaxTokens: number | undefined, arenaBytes: number, private readonly ownsWeights = true, scratchOf?: GpuSession) {
    const c = config;
    this.contextSize = ctx;
    this.vocabSize = c.vocab_size;
    const mla: MlaGeometry = { heads: c.num_attention_heads, nope: c.qk_nope_head_dim, rope: c.qk_rope_head_dim, v: c.v_head_dim, rank: c.kv_lora_rank };
    const moe: MoeGeometry | null = c.derived.moeLayers.some(Boolean)
      ? { hidden: c.hidden_size, experts: c.n_routed_experts, topK: c.num_experts_per_tok, inter: c.moe_intermediate_size, sharedInter: c.derived.sharedIntermediate }
      : null;
    const limit = gpu.limits.maxStorageBufferBindingSize;
    const fit = Math.floor(limit / (4 * widestRow(c, mla, moe)));
    if (fit < 1) throw new DeviceError(`one token's activations exceed maxStorageBufferBindingSize ${limit}`, { limit: 'maxStorageBufferBindingSize', value: limit });
    this.chunk = Math.max(1, Math.min(chunkSize, ctx, fit));
    if (scratchOf) {
      if (scratchOf.chunk !== this.chunk || scratchOf.contextSize !== ctx) {
        throw new InputError(`a session shares scratch only with one of the same context (${ctx}) and chunk (${this.chunk})`, 'scratchOf');
      }
      this.model = { ...scratchOf.model, cache: new LatentKvCache(gpu, c.num_hidden_layers, ctx, mla), moeDecodeMaxTokens: moeDecodeMaxTokens ?? scratchOf.model.plan.moeDecodeMaxTokens };
      [this.probs, this.picked, this.tokenReadbacks, this.arena] = [scratchOf.probs, scratchOf.picked, scratchOf.tokenReadbacks, scratchOf.arena];
      return;
    }
    const Tc = this.chunk;
    const buf = (floats: number, label: string, usage = STORAGE_RW): GPUBuffer => {
      const b = createBuffer(gpu, Math.max(16, floats * 4), label, usage);
      this.scratch.push(b);
      return b;
    };
    let cache: LatentKvCache | null = null;
    try {
      cache = new LatentKvCache(gpu, c.num_hidden_layers, ctx, mla);
      const d = c.derived;
      const I = Math.max(c.intermediate_size, 1);
      const mlaScratch = createMlaScratch(gpu, mla, Tc, 1);
      const mlaDecode = createMlaScratch(gpu, mla, 1, decodeSplitRule(gpu).maxSplits);
      const moeScratch = moe ? createMoeScratch(gpu, moe, Tc, Tc > 4) : null;
      for (const b of [mlaScratch.qLat, mlaScratch.oLat, mlaDecode.qLat, mlaDecode.oLat, mlaDecode.partO, mlaDecode.partML]) if (b) this.scratch.push(b);
      if (moeScratch) for (const b of [moeScratch.hidden, moeScratch.y, moeScratch.plan, moeScratch.indirect]) if (b) this.scratch.push(b);
      const act: Activations = {
        maxTokens: Tc,
        tokens: buf(ctx, 'act.tokens'),
        h: buf(Tc * c.hidden_size, 'act.h'),
        xn: buf(Tc * c.hidden_size, 'act.xn'),
        qa: c.q_lora_rank ? buf(Tc * stackedLatentWidth(c), 'act.qa') : null,
        qan: c.q_lora_rank ? buf(Tc * c.q_lora_rank, 'act.qan') : null,
        q: buf(Tc * d.qWidth, 'act.q'),
        kv: buf(Tc * d.kvAWidth, 'act.kv'),
        attn: buf(Tc * d.oWidth, 'act.attn'),
        a: buf(Tc * c.hidden_size, 'act.attn_out'),
        f: buf(Tc * c.hidden_size, 'act.ffn_out'),
        gate: buf(Tc * I, 'act.gate'),
        up: buf(Tc * I, 'act.up'),
        act: buf(Tc * I, 'act.swiglu'),
        routerLogits: moe ? buf(Tc * moe.experts, 'act.router_logits') : null,
        ids: moe ? buf(Tc * moe.topK, 'act.topk_idx') : null,
        weights: moe ? buf(Tc * moe.topK, 'act.topk_weight') : null,
        z: buf(Tc * c.hidden_size, 'act.final_norm'),
        logits: buf(Tc * c.vocab_size, 'act.logits'),
        mla: mlaScratch,
        mlaDecode,
        moe: moeScratch,
      };
      const rope = uploadRopeTable(gpu, ropeTables(c, Array.from({ length: ctx }, (_, i) => i)), ctx);
      this.scratch.push(rope.buffer);
      const gemm: GemmVariant = precision === 'f16' ? 'f16' : 'f32';
      const plan = planKernels(kernels, { hidden: c.hidden_size, rank: c.kv_lora_rank, rope: c.qk_rope_head_dim }, precision);
      this.model = { config: c, kernels, weights, cache, rope, act, mla, moe, gemv: plan.gemv, gemm, plan, moeDecodeMaxTokens: moeDecodeMaxTokens ?? plan.moeDecodeMaxTokens };
      this.probs = buf(c.vocab_size, 'sample.probs');
      this.picked = buf(4, 'sample.token');
      this.tokenReadbacks = Array.from({ length: PIPELINE_DEPTH }, (_, i) => buf(4, `sample.readback.${i}`, MAP_READ | COPY_DST));
      this.arena = new UniformArena(gpu, arenaBytes, 'session.uniforms');
      this.scratch.push(this.arena.buffer);
    } catch (err) {
      cache?.destroy();
      for (const b of this.scratch) b.destroy();
      throw err;
    }
  }

  get position(): number {
    return this.pos;
  }

  reset(): void {
    this.requireIdle('reset');
    this.pos = 0;
    this.chainReady = false;
  }

  /**
   * Drops the last `n` tokens from the cache (their rows are overwritten by what comes next): what a pipelined
   * generation calls for the steps it submitted ahead and then did not need (a stop token, a stop string, an abort).
   */
  rewind(n: number): void {
    this.requireIdle('rewind');
    if (!Number.isInteger(n) || n < 0 || n > this.pos) throw new InputError(`cannot rewind ${n} tokens: the cache holds ${this.pos}`, 'tokens');
    this.pos -= n;
    this.chainReady = false;
  }

  /**
   * Whether decodeNext can run now: the last submitted step sampled a token and left it on the GPU, and the session
   * has no expert offloading (whose steps wait on the host for the router's choices while they are recorded).
   */
  get canDecodeNext(): boolean {
    return this.chainReady && this.offload === null; // chainReady: the step that set it left a slot after it
  }

  /**
   * Pipelined decode: appends the token that the last submitted step sampled, read by the GPU where that step left
   * it (tokens[pos]), and samples the next. It does not wait for the earlier step's readback, so up to
   * PIPELINE_DEPTH steps can be submitted before the first is read back: the host records step k + 1 while the
   * device runs step k (generate.ts; docs/benchmarks.md "Pipelined decode"). Results are identical to decode()
   * with the same tokens and sampling.
   */
  decodeNext(sampling: StepSampling): Promise<number> {
    if (!this.canDecodeNext) {
      return Promise.reject(new InputError('decodeNext needs a token sampled on the GPU by the previous step (prefill or decode with sampling first; not with expert offloading)', 'session'));
    }
    return this.step(null, { sampling }) as Promise<number>;
  }

  private requireIdle(what: string): void {
    if (this.recording || this.inFlight > 0) throw new InputError(`${what}: a step is still running on this session (await it first)`, 'session');
  }

  /** For batch-session.ts: a batched step appended `n` tokens to this session's cache. */
  advance(n: number): void {
    if (this.pos + n > this.contextSize) throw new ContextOverflowError(this.pos + n, this.contextSize, 'context');
    this.pos += n;
  }

  gpuBytes(): number {
    const slots = this.offloadSource ? (this.offload?.bytes ?? 0) : 0; // counted once, by the owner
    return this.model.weights.bytes + this.model.cache.bytes + this.scratch.reduce((a, b) => a + b.size, 0) + slots;
  }

  offloadStats(): OffloadStats | null {
    return this.offload?.stats() ?? null;
  }

  /** Runs this session's MoE layers over `o`'s slots (attachOffload); `source` given: this session owns them. */
  useOffload(o: ExpertOffload, source: ExpertSource | null): void {
    this.offload = o;
    this.offloadSource = source;
    if (o.streaming) this.model.offload = o.buffers;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.offloadSource) {
      this.offload?.destroy();
      void this.offloadSource.close();
    }
    if (this.ownsWeights) this.model.weights.destroy();
    this.model.cache.destroy();
    for (const b of this.scratch) b.destroy();
  }

  async prefill(tokens: number[], sampling: StepSampling): Promise<number> {
    return (await this.step(tokens, { sampling })) as number;
  }

  async decode(token: number, sampling: StepSampling): Promise<number> {
    return (await this.step([token], { sampling })) as number;
  }

  async forwardLogits(tokens: number[], opts: { taps?: TapMap } = {}): Promise<Float32Array> {
    return (await this.step(tokens, { taps: opts.taps })) as Float32Array;
  }

  /**
   * Appends `tokens` to the cache: one submission (see the header), then one readback of the sampled token
   * (`sampling` given) or of the logits [T, V]. Taps, when asked for, are read back after it.
   */
  /**
   * `tokens` null: one token, the one the previous step sampled, already at tokens[pos] on the GPU (decodeNext).
   * The position advances when the step is submitted; the readback follows.
   */
  private async step(tokens: number[] | null, a: { sampling?: StepSampling; taps?: TapMap }): Promise<number | Float32Array> {
    if (this.disposed) throw new DeviceError('the session was disposed', { reason: 'disposed' });
    const chained = tokens === null;
    if (this.recording || (chained ? this.inFlight >= PIPELINE_DEPTH : this.inFlight > 0)) {
      throw new InputError('a step is already running on this session (await it first)', 'session');
    }
    const n = tokens?.length ?? 1;
    const V = this.vocabSize;
    if (n === 0) throw new InputError('no tokens given: need at least one token id', 'tokens');
    for (const id of tokens ?? []) {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new InputError(`token id ${id} is outside the vocabulary (vocab_size ${V}: ids 0..${V - 1})`, 'tokens');
    }
    if (this.pos + n > this.contextSize) throw new ContextOverflowError(this.pos + n, this.contextSize, this.pos > 0 ? 'context' : 'prompt');
    if (a.sampling) checkSampling(a.sampling);
    this.gpu.check();
    this.recording = true;
    const dev = this.gpu.device;
    const m = this.model;
    const p0 = this.pos;
    let logitsOut: GPUBuffer | null = null;
    let submitted = false;
    const taps = a.taps ? new TapCollector(this.gpu, n) : null;
    const tokenReadback = this.tokenReadbacks[this.nextReadback]!;
    try {
      if (tokens) dev.queue.writeBuffer(m.act.tokens, p0 * 4, Uint32Array.from(tokens));
      if (!a.sampling) logitsOut = createBuffer(this.gpu, n * V * 4, 'logits.readback', MAP_READ | COPY_DST);
      this.arena.reset();
      let rec = new Recorder(m.kernels, this.arena, 'step');
      let lastUse = 0;
      for (let s = 0; s < n; s += this.chunk) {
        const T = Math.min(this.chunk, n - s);
        const last = s + T === n;
        if (lastUse > 0 && this.arena.capacity - used(this.arena) < 2 * lastUse) {
          // the arena cannot hold another chunk: submit what is recorded (no readback) and go on
          this.arena.flush();
          dev.queue.submit([rec.finish()]);
          this.arena.reset();
          rec = new Recorder(m.kernels, this.arena, 'step');
        }
        const before = used(this.arena);
        taps?.begin(s);
        const args = { T, p0: p0 + s, logits: a.sampling ? (last ? 'last' : 'none') : 'all', taps: taps?.sink(rec) } as const;
        // without offloading the chunk records synchronously (see decodeNext)
        if (this.offload) await recordChunk(m, rec, this.arena, args, this.offload);
        else recordResidentChunk(m, rec, args);
        if (logitsOut) rec.copy(m.act.logits, 0, logitsOut, s * V * 4, T * V * 4);
        lastUse = used(this.arena) - before;
      }
      if (a.sampling) {
        pickToken(m.kernels, rec.pass, this.arena, { logits: m.act.logits, vocab: V, out: this.picked, probs: this.probs }, a.sampling);
        rec.copy(this.picked, 0, tokenReadback, 0, 4);
        // the sampled token is also the next step's input, where decodeNext finds it (the last slot has no next)
        if (p0 + n < this.contextSize) rec.copy(this.picked, 0, m.act.tokens, (p0 + n) * 4, 4);
      }
      this.arena.flush();
      dev.queue.submit([rec.finish()]);
      submitted = true;
      this.pos = p0 + n;
      this.chainReady = a.sampling !== undefined && p0 + n < this.contextSize;
      if (!logitsOut) this.nextReadback = (this.nextReadback + 1) % this.tokenReadbacks.length;
      this.inFlight++;
      this.recording = false;
      const target = logitsOut ?? tokenReadback;
      await mapRead(this.gpu, target);
      let result: number | Float32Array;
      if (logitsOut) {
        // the buffer is padded to 16 bytes: read exactly [n, V]
        result = new Float32Array(logitsOut.getMappedRange(0, n * V * 4).slice(0));
      } else {
        result = new Uint32Array(tokenReadback.getMappedRange(0, 4))[0]!;
      }
      target.unmap();
      if (typeof result === 'number') result = checkSampledToken(result, V, p0 + n - 1);
      if (taps && a.taps) await taps.read(a.taps);
      return result;
    } catch (err) {
      // a step that failed adds nothing to the cache, unless later steps were already submitted after it
      if (this.pos === p0 + n) {
        this.pos = p0;
        this.chainReady = false;
      }
      throw err;
    } finally {
      if (submitted) this.inFlight--;
      this.recording = false;
      logitsOut?.destroy();
      taps?.destroy();
    }
  }
}

function used(arena: UniformArena): number {
  return arena.usedBytes;
}

async function mapRead(gpu: GpuContext, b: GPUBuffer): Promise<void> {
  try {
    await b.mapAsync(MAP_READ);
  } catch (err) {
    gpu.check();
    throw new DeviceError(`readback failed: ${(err as Error).message}`, { reason: 'map' });
  }
  gpu.check();
}

/**
 * Records the choice of one token from a row of logits (sample.wgsl, greedy steps included: the kernel also
 * writes NO_TOKEN for non-finite logits). Check the id read back with sampler.ts checkSampledToken.
 */
export function pickToken(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: PickArgs & { probs: GPUBuffer }, smp: StepSampling): void {
  sampleToken(k, pass, arena, { ...a, ...smp });
}

export function checkSampling(s: StepSampling): void {
  if (!Number.isFinite(s.temperature) || s.temperature < 0) throw new InputError(`temperature must be >= 0, got ${s.temperature}`, 'temperature');
  if (!Number.isInteger(s.topK) || s.topK < 0) throw new InputError(`top-k must be an integer >= 0, got ${s.topK}`, 'topK');
  if (!Number.isFinite(s.topP) || s.topP <= 0 || s.topP > 1) throw new InputError(`top-p must be in (0, 1], got ${s.topP}`, 'topP');
  if (!(s.uniform >= 0 && s.uniform < 1)) throw new InputError(`uniform must be in [0, 1), got ${s.uniform}`, 'uniform');
}

/**
 * Collects taps of a whole step: every tap name gets a region [n, width] of one MAP_READ buffer per name;
 * chunk c's rows land at row offset s (its first token).
 */
class TapCollector {
  private readonly regions = new Map<string, { buf: GPUBuffer; width: number; dtype: 'f32' | 'u32' }>();
  private start = 0;

  constructor(private readonly gpu: GpuContext, private readonly rows: number) {}

  begin(start: number): void {
    this.start = start;
  }

  sink(rec: Recorder): TapSink {
    return {
      tap: (name, src, rows, width, dtype) => {
        let r = this.regions.get(name);
        if (!r) {
          r = { buf: createBuffer(this.gpu, this.rows * width * 4, `tap.${name}`, MAP_READ | COPY_DST), width, dtype };
          this.regions.set(name, r);
        }
        rec.copy(src, 0, r.buf, this.start * width * 4, rows * width * 4);
      },
    };
  }

  async read(into: TapMap): Promise<void> {
    for (const [name, r] of this.regions) {
      await mapRead(this.gpu, r.buf);
      const bytes = r.buf.getMappedRange(0, this.rows * r.width * 4);
      const data = r.dtype === 'u32' ? Int32Array.from(new Uint32Array(bytes)) : Float64Array.from(new Float32Array(bytes));
      r.buf.unmap();
      into.set(name, { shape: [this.rows, r.width], data });
    }
  }

  destroy(): void {
    for (const r of this.regions.values()) r.buf.destroy();
  }
}
