/**
 * Expert offloading on the GPU side (docs/offloading.md): routed experts live in a fixed number S of slots per MoE
 * layer, filled from an ExpertSource (offload/expert-source.ts) by the host between submissions, under a GPU
 * memory budget that caps every allocation of the session.
 *
 * Per MoE layer:
 *   slots     shards of S expert slots in the stack layout of ops/moe.ts (slot s = stack index s): gate_up
 *             [2·count, F, D], down [count, D, F] (+ scales), each shard within the binding limit
 *   cache     an ExpertCache (offload/expert-cache.ts): which expert holds which slot, and the eviction policy
 *   pending   uploads in flight (demand misses and prefetches), by expert
 * Shared:
 *   slotIds   u32 [chunk, K]: the slot of each (token, k) of the wave being recorded (≥ S: not in this wave)
 *   readback  u32 [2, chunk, K]: the router's ids and the next MoE layer's predicted ids, read after each MoE
 *             layer's router
 *
 * A step (streaming mode, drive()): the forward pass (forward.ts encodeChunkSteps) stops after each MoE layer's
 * router and the prediction of the next MoE layer's experts (that layer's router on the current MoE input, the
 * same router math); the driver submits, reads back the ids (a few bytes), starts the uploads of the misses, then
 * the prefetches of the predicted experts of the next layer (at most `prefetch` per layer, behind the misses on the
 * link), waits only for the experts this layer needs, writes the slot ids and lets the pass record the layer's
 * experts. A chunk whose experts outnumber the slots runs in waves: token ranges on the by-id path (each token's
 * K experts fit: S ≥ K), sets of at most S experts on the grouped path (the shared expert in the first wave, the
 * combine after the last). Every row is computed by the same kernel on the same data in the same order as with
 * every expert resident, so logits are bit-identical at any budget.
 *
 * Telemetry (OffloadStats): per MoE layer and in total, a demand hit is an expert resident when its layer needs
 * it (a completed prefetch counts), a late prefetch one still in flight then, a miss one never requested; stall
 * ms is the time a layer waited for uploads; wasted prefetch bytes are prefetched experts evicted before any use;
 * lookahead recall is the share of a layer's true experts that the prediction named.
 *
 * Legend: S slots per MoE layer, E routed experts, K experts per token, D hidden, F moe_intermediate_size.
 */
import { InputError } from '../errors.js';
import { createBuffer, writeBuffer, type UniformArena } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/device.js';
import type { WeightBuffers } from '../gpu/ops/binding.js';
import { expertShards, stackLayout } from '../gpu/ops/fp8-layout.js';
import type { ExpertShardBuffers } from '../gpu/ops/moe.js';
import type { Checkpoint } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import { checkpointExpertSource } from '../offload/expert-source.js';
import { mulberry32 } from '../random.js';
import { ExpertCache, type CachePolicy } from '../offload/expert-cache.js';
import { checkExpertBytes, type ExpertShape, type ExpertSource } from '../offload/expert-source.js';
import type { RoutingTrace } from '../offload/traces.js';
import { encodeChunkSteps, type ChunkArgs, type ExpertsNeeded, type ExpertWave, type GpuModel, type OffloadBuffers, type Recorder } from './forward.js';
import type { GpuWeights } from './weights-gpu.js';

const MAP_READ = 0x0001;
const COPY_DST = 0x0008;
const NOT_IN_WAVE = 0xffffffff;

export interface OffloadOptions {
  /** GPU bytes the session may allocate in all (weights, KV cache, activations, scratch, slots). */
  gpuMemory: number;
  /**
   * Where the routed experts come from (default: the checkpoint's own files / URL), or a function that makes the
   * source from the opened checkpoint (the page's OPFS store over the checkpoint's files).
   */
  source?: ExpertSource | ((ckpt: Checkpoint) => ExpertSource);
  /** Eviction policy (default 'lfu': LFU with recency). */
  policy?: CachePolicy;
  /** Most predicted experts prefetched per layer and step (default K; 0 or false: no prefetch). */
  prefetch?: number | false;
  /** Run the streaming path even when every expert fits (the sync cost of streaming, bench S2). */
  streaming?: boolean;
  /** Record every token's routing (offload.trace()) for --record-routing. */
  recordRouting?: boolean;
  /** Bench only: replay a routing trace instead of the router's ids (logits are then meaningless). */
  replay?: RoutingReplay;
  /** Called while the slots are first filled. */
  onProgress?: (done: number, total: number) => void;
}

/** A bench-only routing replay: token n of every step uses trace.tokens[n % N]; the lookahead has recall p. */
export interface RoutingReplay {
  trace: RoutingTrace;
  /** Probability that a predicted id is the trace's next-layer id (else a random expert); default 0.9. */
  recall?: number;
  seed?: number;
}

export interface LayerOffloadStats {
  layer: number;
  lookups: number;
  demandHits: number;
  latePrefetches: number;
  misses: number;
  stallMs: number;
  bytesStreamed: number;
  prefetchesIssued: number;
  wastedPrefetchBytes: number;
  /** predicted ids that were among the layer's true ids, and the true ids compared */
  recallHits: number;
  recallTotal: number;
}

export interface OffloadStats {
  slotsPerLayer: number;
  experts: number;
  expertBytes: number;
  streaming: boolean;
  tokens: number;
  lookups: number;
  demandHits: number;
  latePrefetches: number;
  misses: number;
  hitRate: number;
  stallMs: number;
  bytesStreamed: number;
  prefetchesIssued: number;
  wastedPrefetchBytes: number;
  lookaheadRecall: number;
  /**
   * wall seconds with at least one expert read or upload in flight (overlapping uploads counted once; overlaps
   * compute): bytesStreamed / uploadSeconds is the expert path's throughput
   */
  uploadSeconds: number;
  layers: LayerOffloadStats[];
}

/** GPU bytes of S slots of one layer (the four stacks, padded as createBuffer pads). */
export function slotBytes(shape: ExpertShape, c: ModelConfig, S: number, maxBinding: number): number {
  const F = c.moe_intermediate_size;
  const D = c.hidden_size;
  const gu1 = stackLayout(shape.format, 2, F, D);
  const dn1 = stackLayout(shape.format, 1, D, F);
  let total = 0;
  for (const r of expertShards(S, Math.max(gu1.codeBytes, dn1.codeBytes), maxBinding, 'expert slots')) {
    const gu = stackLayout(shape.format, 2 * r.count, F, D);
    const dn = stackLayout(shape.format, r.count, D, F);
    total += pad16(gu.codeBytes) + pad16(dn.codeBytes);
    if (shape.format !== 'bf16') total += pad16(Math.max(16, gu.scaleBytes)) + pad16(Math.max(16, dn.scaleBytes));
  }
  return total;
}

/** GPU bytes of the offload buffers besides the slots (slot ids, readback, prediction). */
export function offloadFixedBytes(c: ModelConfig, chunk: number): number {
  const K = c.num_experts_per_tok;
  return pad16(chunk * K * 4) * 4 + pad16(2 * chunk * K * 4) + pad16(chunk * c.n_routed_experts * 4);
}

function pad16(n: number): number {
  return Math.max(16, Math.ceil(n / 16) * 16);
}

/** One shard of slots as buffers: [codes, scales (null for BF16)] of the gate_up and down stacks. */
interface RawShard {
  first: number;
  count: number;
  gateUp: [GPUBuffer, GPUBuffer | null];
  down: [GPUBuffer, GPUBuffer | null];
}

interface LayerState {
  layer: number;
  shards: ExpertShardBuffers[];
  raw: RawShard[];
  cache: ExpertCache;
  /** uploads in flight by expert (resolves once written) */
  pending: Map<number, Promise<void>>;
  /** experts admitted by prefetch and not used since */
  prefetched: Set<number>;
  /** the prediction made for this layer by the previous MoE layer, per token of the last chunk */
  predicted: number[][] | null;
  stats: LayerOffloadStats;
}

interface WavePlan {
  experts: number[];
  tokenRange?: { t0: number; count: number };
}

/** The GPU slots, their caches and the streaming driver of one session (see the header). */
export class ExpertOffload {
  readonly buffers: OffloadBuffers;
  readonly slots: number;
  readonly streaming: boolean;
  private readonly layers = new Map<number, LayerState>();
  private readonly moeLayers: number[];
  private readonly slotIds: GPUBuffer;
  private readonly readback: GPUBuffer;
  private readonly owned: GPUBuffer[] = [];
  private readonly prefetchCap: number;
  private readonly replayRng: (() => number) | null;
  private tokens = 0;
  private chunkBase = 0;
  private uploadSeconds = 0;
  private recorded: number[][][] | null;
  private waves: WavePlan[] = [];
  private failed: unknown = null;

  constructor(
    private readonly gpu: GpuContext, private readonly config: ModelConfig, private readonly source: ExpertSource,
    slots: number, private readonly chunk: number, private readonly opts: OffloadOptions,
  ) {
    const c = config;
    const K = c.num_experts_per_tok;
    const E = c.n_routed_experts;
    this.slots = slots;
    this.streaming = slots < E || opts.streaming === true;
    this.moeLayers = c.derived.moeLayers.flatMap((moe, i) => (moe ? [i] : []));
    this.prefetchCap = opts.prefetch === false ? 0 : Math.max(0, Math.floor(opts.prefetch ?? K));
    this.replayRng = opts.replay ? mulberry32(opts.replay.seed ?? 1) : null;
    this.recorded = opts.recordRouting ? [] : null;
    const buf = (bytes: number, label: string, usage?: number) => {
      const b = createBuffer(gpu, bytes, label, usage);
      this.owned.push(b);
      return b;
    };
    try {
      this.slotIds = buf(chunk * K * 4, 'offload.slot_ids');
      this.readback = buf(2 * chunk * K * 4, 'offload.ids_readback', MAP_READ | COPY_DST);
      this.buffers = {
        predLogits: buf(chunk * E * 4, 'offload.pred_logits'),
        predIds: buf(chunk * K * 4, 'offload.pred_ids'),
        predWeights: buf(chunk * K * 4, 'offload.pred_weights'),
      };
      buf(chunk * K * 4, 'offload.reserved'); // keeps offloadFixedBytes' count of four [chunk, K] buffers exact
      for (const l of this.moeLayers) {
        this.layers.set(l, {
          layer: l,
          ...this.createSlots(l),
          cache: new ExpertCache(E, slots, { policy: opts.policy ?? 'lfu' }),
          pending: new Map(),
          prefetched: new Set(),
          predicted: null,
          stats: emptyLayerStats(l),
        });
      }
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  /** GPU bytes held (slots and the offload buffers). */
  get bytes(): number {
    return this.owned.reduce((a, b) => a + b.size, 0);
  }

  /** The slots of `layer` as expert stacks (the all-resident path binds them directly when S = E). */
  shardsOf(layer: number): ExpertShardBuffers[] {
    return this.state(layer).shards;
  }

  /** Fills every layer's slots with experts 0 .. S-1 (expert e in slot e), as a loader that streams them in. */
  async preload(): Promise<void> {
    const total = this.moeLayers.length * this.slots;
    let done = 0;
    for (const l of this.moeLayers) {
      const st = this.state(l);
      for (let e = 0; e < this.slots; e++) {
        const adm = st.cache.admit(e);
        if (!adm) throw new Error('unreachable: a fresh cache has a free slot');
        await this.write(st, e, adm.slot, await this.source.read(l, e));
        this.opts.onProgress?.(++done, total);
      }
    }
  }

  destroy(): void {
    for (const b of this.owned) b.destroy();
    this.owned.length = 0;
  }

  /** The routing recorded so far (recordRouting), as a trace. */
  trace(): RoutingTrace {
    return { experts: this.config.n_routed_experts, topK: this.config.num_experts_per_tok, layers: [...this.moeLayers], tokens: this.recorded ?? [] };
  }

  stats(): OffloadStats {
    const head = { slotsPerLayer: this.slots, experts: this.config.n_routed_experts, expertBytes: this.source.shape.total, streaming: this.streaming };
    return withTotals(head, this.moeLayers.map((l) => ({ ...this.state(l).stats })), this.tokens, this.uploadSeconds);
  }

  /** Zeroes the counters (the slots and the cache's history stay). */
  resetStats(): void {
    for (const st of this.layers.values()) st.stats = emptyLayerStats(st.layer);
    this.tokens = 0;
    this.uploadSeconds = 0;
  }

  /**
   * Answers one stop of the forward pass (ExpertsNeeded): submits what is recorded, and for wave 0 reads back the
   * router's ids and plans the layer's waves; then makes the wave's experts resident and writes its slot ids.
   */
  async serve(req: ExpertsNeeded, rec: Recorder, arena: UniformArena): Promise<ExpertWave> {
    if (this.failed) throw this.failed;
    const K = this.config.num_experts_per_tok;
    const T = req.T;
    const st = this.state(req.layer);
    const dev = this.gpu.device;
    let ids: number[][] = [];
    if (req.wave === 0) {
      rec.copy(req.ids, 0, this.readback, 0, T * K * 4);
      if (req.predicted) rec.copy(this.buffers.predIds, 0, this.readback, this.chunk * K * 4, T * K * 4);
    }
    arena.flush();
    dev.queue.submit([rec.cut()]);
    arena.reset();
    if (req.wave === 0) {
      await this.readback.mapAsync(MAP_READ);
      this.gpu.check();
      const all = new Uint32Array(this.readback.getMappedRange(0, 2 * this.chunk * K * 4).slice(0));
      this.readback.unmap();
      ids = rows(all, 0, T, K);
      // tokens are numbered in the order the offloader sees them (recording, replay)
      if (req.layer === this.moeLayers[0]) {
        this.chunkBase = this.tokens;
        this.tokens += T;
      }
      let pred = req.predicted ? rows(all, this.chunk * K, T, K) : null;
      if (this.opts.replay) ({ ids, pred } = this.replayed(req.layer, this.chunkBase, T, pred !== null));
      this.checkIds(ids, req.layer);
      this.record(req.layer, this.chunkBase, ids);
      this.scoreRecall(st, ids);
      this.waves = this.planWaves(st, ids, req.decodePath);
      // demand before prefetch: both queue on the same link, the misses first
      const need = this.waves[0]!.experts;
      const demand = this.demand(st, need, ids);
      const next = this.moeLayers[this.moeLayers.indexOf(req.layer) + 1];
      if (pred && next !== undefined) this.prefetch(this.state(next), pred);
      await demand;
    } else {
      await this.demand(st, this.waves[req.wave]!.experts, null);
    }
    const wave = this.waves[req.wave]!;
    this.writeSlotIds(st, wave, req.T, ids.length ? ids : null);
    return {
      shards: st.shards,
      slots: this.slots,
      slotIds: this.slotIds,
      tokenRange: wave.tokenRange,
      first: req.wave === 0,
      last: req.wave === this.waves.length - 1,
    };
  }

  // --- planning

  private lastIds: number[][] = [];

  /** Splits a chunk's routing into waves whose experts fit the slots (one wave when they all fit). */
  private planWaves(st: LayerState, ids: number[][], decodePath: boolean): WavePlan[] {
    this.lastIds = ids;
    const S = this.slots;
    const union = [...new Set(ids.flat())];
    if (union.length <= S) return [{ experts: union, tokenRange: decodePath ? { t0: 0, count: ids.length } : undefined }];
    const waves: WavePlan[] = [];
    if (decodePath) {
      // token ranges: extend while the union fits (one token's K experts always fit: S ≥ K)
      let t0 = 0;
      while (t0 < ids.length) {
        const set = new Set(ids[t0]);
        let t1 = t0 + 1;
        while (t1 < ids.length && new Set([...set, ...ids[t1]!]).size <= S) ids[t1++]!.forEach((e) => set.add(e));
        waves.push({ experts: [...set], tokenRange: { t0, count: t1 - t0 } });
        t0 = t1;
      }
      return waves;
    }
    // expert sets: the resident ones first (no upload), then the rest in slot-sized groups
    const resident = union.filter((e) => st.cache.slotOf(e) !== undefined && !st.pending.has(e));
    const rest = union.filter((e) => !resident.includes(e));
    const order = [...resident, ...rest];
    for (let i = 0; i < order.length; i += S) waves.push({ experts: order.slice(i, i + S) });
    return waves;
  }

  private writeSlotIds(st: LayerState, wave: WavePlan, T: number, fresh: number[][] | null): void {
    const K = this.config.num_experts_per_tok;
    const ids = fresh ?? this.lastIds;
    const inWave = new Set(wave.experts);
    const out = new Uint32Array(T * K);
    for (let t = 0; t < T; t++) {
      for (let k = 0; k < K; k++) {
        const e = ids[t]![k]!;
        out[t * K + k] = inWave.has(e) ? st.cache.slotOf(e)! : NOT_IN_WAVE;
      }
    }
    writeBuffer(this.gpu, this.slotIds, 0, out);
  }

  // --- residency

  /** Makes `experts` resident in `st`'s slots: counts hits / late prefetches / misses, waits, records the stall. */
  private async demand(st: LayerState, experts: number[], uses: number[][] | null): Promise<void> {
    const t0 = performance.now();
    const keep = new Set(experts);
    const waits: Promise<void>[] = [];
    for (const e of experts) {
      const pending = st.pending.get(e);
      st.stats.lookups++;
      if (st.cache.slotOf(e) !== undefined && !pending) {
        st.stats.demandHits++;
      } else if (pending && st.cache.slotOf(e) !== undefined) {
        st.stats.latePrefetches++;
        waits.push(pending);
      } else {
        st.stats.misses++;
        waits.push(this.upload(st, e, keep));
      }
      st.prefetched.delete(e);
    }
    // the policy's history: one step per token of the chunk (with the first wave)
    for (const row of uses ?? []) st.cache.use(row);
    await Promise.all(waits);
    st.stats.stallMs += performance.now() - t0;
  }

  /** Predicted experts of the next MoE layer: the most named ones first, at most `prefetchCap`. */
  private prefetch(st: LayerState, pred: number[][]): void {
    st.predicted = pred;
    if (this.prefetchCap === 0) return;
    const votes = new Map<number, number>();
    for (const row of pred) for (const e of row) votes.set(e, (votes.get(e) ?? 0) + 1);
    const ranked = [...votes.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([e]) => e);
    const keep = new Set([...ranked.slice(0, this.prefetchCap), ...st.pending.keys()]);
    let issued = 0;
    for (const e of ranked) {
      if (issued >= this.prefetchCap) break;
      if (st.cache.slotOf(e) !== undefined) continue;
      const up = this.upload(st, e, keep, true);
      if (!up) break;
      issued++;
      st.stats.prefetchesIssued++;
      st.prefetched.add(e);
      up.catch(() => {}); // a failed prefetch surfaces when the expert is demanded (failed is set)
    }
  }

  /**
   * Admits `e` into a slot (evicting what the policy picks, never one in `keep`) and uploads it; the promise
   * resolves once the bytes are written. Returns null for a prefetch that finds no slot.
   */
  private upload(st: LayerState, e: number, keep: ReadonlySet<number>, isPrefetch: true): Promise<void> | null;
  private upload(st: LayerState, e: number, keep: ReadonlySet<number>): Promise<void>;
  private upload(st: LayerState, e: number, keep: ReadonlySet<number>, isPrefetch = false): Promise<void> | null {
    const adm = st.cache.admit(e, keep);
    if (!adm) {
      if (isPrefetch) return null;
      throw new Error(`unreachable: no slot for expert ${e} of layer ${st.layer} (S = ${this.slots} ≥ the wave's experts)`);
    }
    if (adm.evicted !== null) {
      st.pending.delete(adm.evicted);
      if (st.prefetched.delete(adm.evicted)) st.stats.wastedPrefetchBytes += this.source.shape.total;
    }
    this.uploadStarted();
    // the job compares itself with the pending entry once its read is done (a newer admission replaces it)
    let job: Promise<void> | undefined = undefined;
    job = (async () => {
      const bytes = await this.source.read(st.layer, e);
      // a newer admission took the slot while the read was in flight: drop these bytes
      if (st.cache.slotOf(e) !== adm.slot || st.pending.get(e) !== job) return;
      await this.write(st, e, adm.slot, bytes);
      st.pending.delete(e);
      st.stats.bytesStreamed += this.source.shape.total;
    })();
    void job.finally(() => this.uploadEnded()).catch(() => {});
    st.pending.set(e, job);
    job.catch((err: unknown) => {
      st.pending.delete(e);
      st.cache.evict(e);
      this.failed ??= err;
    });
    return job;
  }

  /** Busy-time bookkeeping of the expert path: uploadSeconds grows while at least one upload is in flight. */
  private inflight = 0;
  private busySince = 0;

  private uploadStarted(): void {
    if (this.inflight++ === 0) this.busySince = performance.now();
  }

  private uploadEnded(): void {
    if (--this.inflight === 0) this.uploadSeconds += (performance.now() - this.busySince) / 1000;
  }

  /** Writes an expert's four arrays into slot `slot` of `st`. */
  private async write(st: LayerState, e: number, slot: number, b: Awaited<ReturnType<ExpertSource['read']>>): Promise<void> {
    const shape = this.source.shape;
    checkExpertBytes(b, shape, `${this.source.name}: layer ${st.layer} expert ${e}`);
    const shard = st.raw.find((s) => slot >= s.first && slot < s.first + s.count)!;
    const local = slot - shard.first;
    this.gpu.check();
    writeBuffer(this.gpu, shard.gateUp[0], local * shape.gateUpCodes, b.gateUpCodes);
    writeBuffer(this.gpu, shard.down[0], local * shape.downCodes, b.downCodes);
    if (shard.gateUp[1]) writeBuffer(this.gpu, shard.gateUp[1], local * shape.gateUpScales, b.gateUpScales);
    if (shard.down[1]) writeBuffer(this.gpu, shard.down[1], local * shape.downScales, b.downScales);
  }

  private createSlots(layer: number): { shards: ExpertShardBuffers[]; raw: RawShard[] } {
    const c = this.config;
    const F = c.moe_intermediate_size;
    const D = c.hidden_size;
    const format = this.source.shape.format;
    const gu1 = stackLayout(format, 2, F, D);
    const dn1 = stackLayout(format, 1, D, F);
    const limit = Math.min(this.gpu.limits.maxStorageBufferBindingSize, this.gpu.limits.maxBufferSize);
    const stack = (count: number, rows: number, cols: number, label: string): [GPUBuffer, GPUBuffer | null] => {
      const L = stackLayout(format, count, rows, cols);
      const codes = createBuffer(this.gpu, L.codeBytes, label);
      this.owned.push(codes);
      if (format === 'bf16') return [codes, null];
      const scales = createBuffer(this.gpu, Math.max(16, L.scaleBytes), `${label}_scales`);
      this.owned.push(scales);
      return [codes, scales];
    };
    const bind = ([codes, scales]: [GPUBuffer, GPUBuffer | null]): WeightBuffers =>
      !scales ? { format: 'bf16', codes } : format === 'int4' ? { format: 'int4', codes, scales } : { codes, scales };
    const raw = expertShards(this.slots, Math.max(gu1.codeBytes, dn1.codeBytes), limit, `model.layers.${layer}.mlp.experts (slots)`).map((r) => ({
      first: r.first,
      count: r.count,
      gateUp: stack(2 * r.count, F, D, `layers.${layer}.slots[${r.first}:${r.first + r.count}].gate_up`),
      down: stack(r.count, D, F, `layers.${layer}.slots[${r.first}:${r.first + r.count}].down`),
    }));
    return { raw, shards: raw.map((r) => ({ first: r.first, count: r.count, gateUp: bind(r.gateUp), down: bind(r.down) })) };
  }

  // --- telemetry, replay, checks

  private scoreRecall(st: LayerState, ids: number[][]): void {
    if (!st.predicted) return;
    ids.forEach((row, t) => {
      const p = new Set(st.predicted![t] ?? []);
      st.stats.recallTotal += row.length;
      st.stats.recallHits += row.filter((e) => p.has(e)).length;
    });
    st.predicted = null;
  }

  private record(layer: number, tokenBase: number, ids: number[][]): void {
    if (!this.recorded) return;
    const li = this.moeLayers.indexOf(layer);
    ids.forEach((row, t) => {
      const tok = (this.recorded![tokenBase + t] ??= []);
      tok[li] = [...row];
    });
  }

  /** The trace's ids for tokens tokenBase .. +T and the simulated lookahead for the next layer (recall p). */
  private replayed(layer: number, tokenBase: number, T: number, predict: boolean): { ids: number[][]; pred: number[][] | null } {
    const r = this.opts.replay!;
    const tr = r.trace;
    const li = this.moeLayers.indexOf(layer);
    const E = this.config.n_routed_experts;
    const at = (n: number, l: number) => tr.tokens[n % tr.tokens.length]![l % tr.layers.length]!;
    const ids = Array.from({ length: T }, (_, t) => [...at(tokenBase + t, li)]);
    if (!predict) return { ids, pred: null };
    const p = r.recall ?? 0.9;
    const rng = this.replayRng!;
    const pred = Array.from({ length: T }, (_, t) => {
      const truth = at(tokenBase + t, li + 1);
      const out = new Set<number>();
      for (const e of truth) {
        if (rng() < p) out.add(e);
        else {
          let x = Math.floor(rng() * E);
          while (out.has(x) || truth.includes(x)) x = (x + 1) % E;
          out.add(x);
        }
      }
      return [...out];
    });
    return { ids, pred };
  }

  private checkIds(ids: number[][], layer: number): void {
    const E = this.config.n_routed_experts;
    for (const row of ids) {
      for (const e of row) {
        if (!(e < E)) throw new InputError(`the router of layer ${layer} returned expert id ${e} (E = ${E}): non-finite activations?`, 'routing');
      }
    }
    if (this.opts.replay && this.opts.replay.trace.experts !== E) {
      throw new InputError(`the replayed trace has ${this.opts.replay.trace.experts} experts, the model ${E}`, 'replay');
    }
  }

  private state(layer: number): LayerState {
    const st = this.layers.get(layer);
    if (!st) throw new InputError(`layer ${layer} is not a MoE layer`, 'layer');
    return st;
  }
}

function rows(all: Uint32Array, offset: number, T: number, K: number): number[][] {
  return Array.from({ length: T }, (_, t) => Array.from(all.subarray(offset + t * K, offset + (t + 1) * K)));
}

function emptyLayerStats(layer: number): LayerOffloadStats {
  return {
    layer, lookups: 0, demandHits: 0, latePrefetches: 0, misses: 0, stallMs: 0, bytesStreamed: 0,
    prefetchesIssued: 0, wastedPrefetchBytes: 0, recallHits: 0, recallTotal: 0,
  };
}

/** Replaces the routed experts of every MoE layer by the slots of `o` (all-resident: slot e holds expert e). */
export function bindResidentSlots(weights: GpuWeights, o: ExpertOffload): void {
  weights.layers.forEach((l, i) => {
    if (l.moe) l.moe.experts = { shards: o.shardsOf(i), shared: l.moe.experts.shared };
  });
}

/**
 * Records one chunk: in one go when every expert is resident (`offload` null or not streaming), else stopping at
 * each MoE layer and wave for `offload` to make its experts resident (several submissions; the last one is left
 * to the caller, as in the one-go case).
 */
export async function recordChunk(m: GpuModel, rec: Recorder, arena: UniformArena, a: ChunkArgs, offload: ExpertOffload | null): Promise<void> {
  if (!offload) return recordResidentChunk(m, rec, a);
  const steps = encodeChunkSteps(m, rec, a);
  for (let r = steps.next(); !r.done; ) r = steps.next(await offload.serve(r.value, rec, arena));
}

/**
 * recordChunk without offloading, synchronously: nothing stops for experts, so the chunk is recorded before this
 * returns (a pipelined decode step is submitted before its caller can start the next one).
 */
export function recordResidentChunk(m: GpuModel, rec: Recorder, a: ChunkArgs): void {
  if (!encodeChunkSteps(m, rec, a).next().done) throw new Error('recordChunk: the model stops for experts but the session has no offloader');
}

/** `after` minus `before` (two stats() of one offloader): the counters of what ran in between. */
export function subtractOffloadStats(after: OffloadStats, before: OffloadStats): OffloadStats {
  const layers = after.layers.map((l, i) => {
    const b = before.layers[i]!;
    const d = { ...l };
    for (const k of Object.keys(d) as (keyof LayerOffloadStats)[]) if (k !== 'layer') d[k] = l[k] - b[k];
    return d;
  });
  return withTotals(after, layers, after.tokens - before.tokens, after.uploadSeconds - before.uploadSeconds);
}

/** OffloadStats from per-layer counters: the totals summed over layers, the rates from the sums. */
function withTotals(
  head: Pick<OffloadStats, 'slotsPerLayer' | 'experts' | 'expertBytes' | 'streaming'>, layers: LayerOffloadStats[], tokens: number, uploadSeconds: number,
): OffloadStats {
  const sum = (k: keyof LayerOffloadStats) => layers.reduce((a, s) => a + s[k], 0);
  const lookups = sum('lookups');
  const recallTotal = sum('recallTotal');
  return {
    slotsPerLayer: head.slotsPerLayer,
    experts: head.experts,
    expertBytes: head.expertBytes,
    streaming: head.streaming,
    tokens,
    lookups,
    demandHits: sum('demandHits'),
    latePrefetches: sum('latePrefetches'),
    misses: sum('misses'),
    hitRate: lookups > 0 ? sum('demandHits') / lookups : 1,
    stallMs: sum('stallMs'),
    bytesStreamed: sum('bytesStreamed'),
    prefetchesIssued: sum('prefetchesIssued'),
    wastedPrefetchBytes: sum('wastedPrefetchBytes'),
    lookaheadRecall: recallTotal > 0 ? sum('recallHits') / recallTotal : 1,
    uploadSeconds,
    layers,
  };
}

/** One line for people: `experts: 16/64 slots, hit rate 0.93 (2 late, 14 misses), 3.1 MiB streamed, stall 45 ms`. */
export function formatOffload(s: OffloadStats): string {
  const mib = (b: number) => (b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 2 : 1);
  return (
    `experts: ${s.slotsPerLayer}/${s.experts} slots per layer, hit rate ${s.hitRate.toFixed(3)} (${s.latePrefetches} late, ${s.misses} misses), ` +
    `${mib(s.bytesStreamed)} MiB streamed, stall ${s.stallMs.toFixed(0)} ms, lookahead recall ${s.lookaheadRecall.toFixed(2)}`
  );
}

/** The expert source an offloading session reads: OffloadOptions.source (or what it makes), else the checkpoint's. */
export function expertSourceFor(ckpt: Checkpoint, opts: OffloadOptions): ExpertSource {
  const s = opts.source;
  return typeof s === 'function' ? s(ckpt) : (s ?? checkpointExpertSource(ckpt));
}
