/**
 * The GPU forward pass of one chunk of T tokens at positions p0 .. p0+T-1: the per-layer dispatch sequence,
 * recorded into the caller's command encoder (nothing here submits or reads back). It mirrors
 * src/model/reference.ts ReferenceSession.prefill step by step and records the same named taps (taps.ts).
 *
 *   embed(tokens) → h                                                      [T, D]
 *   per layer i:
 *     xn = RMSNorm(h, input_layernorm)
 *     q  = q_b(RMSNorm(q_a(xn), q_a_layernorm))  | q_proj(xn)               [T, H·Dq]
 *     kv = kv_a(xn)                                                        [T, R + Dr]
 *     cache[p0+t, :R] = RMSNorm(kv[t, :R], kv_a_layernorm);  cache[p0+t, R:] = RoPE(kv[t, R:])
 *     RoPE(q[t, h, Dn:]) in place                  (these three: one dispatch, mla_kv_rope)
 *     o  = MLA(q, cache rows 0 .. p0+T-1, kv_b)  (ops/attention.ts mlaAttend, absorbed form; one token without
 *          a key split: one dispatch, mla_attend_rows, where plan.attendRows)
 *     h += o_proj(o)                          (tap attn_out)
 *     xn = RMSNorm(h, post_attention_layernorm)   (tap moe.input)
 *     dense: f = down(silu(gate(xn)) ⊙ up(xn))
 *     MoE:   logits = router(xn) (BF16 GEMV/GEMM); ids, w = moeRouter; f = moeExperts(xn, ids, w) + shared
 *     h += f                                   (taps ffn_out, hidden, moe.topk_idx, moe.topk_weight)
 *   z = RMSNorm(h, norm) (all rows, or the last row only) → logits = lm_head(z)
 * Without taps the residual adds are fused into o_proj / down / the MoE combine (accumulate into h), and an RMSNorm
 * whose readers are all decode GEMVs of the wide family with their x rows staged in workgroup memory runs as their
 * prologue instead of a dispatch of its own (plan.normPrologue; input_layernorm into q_a / kv_a, q_a_layernorm into q_b, post_attention_layernorm
 * into a dense layer's gate / up or into the router GEMV, which writes xn for the experts; the final norm into
 * lm_head): docs/kernels.md "Fused decode dispatches".
 *
 * Legend: T tokens in the chunk, D hidden, H heads, Dn/Dr/Dv head dims, Dq = Dn + Dr, R kv_lora_rank,
 * Rq q_lora_rank, I intermediate, E experts, K experts per token, V vocab.
 */
import type { UniformArena } from '../gpu/buffers.js';
import type { Kernels } from '../gpu/kernels.js';
import { chooseSplits, mlaAbsorbQ, mlaAbsorbV, mlaAttend, mlaAttention, type MlaGeometry, type MlaScratch } from '../gpu/ops/attention.js';
import { addInPlace, swiglu } from '../gpu/ops/elementwise.js';
import { embedTokens } from '../gpu/ops/embed.js';
import { fusesNorm, linear, type GemmVariant, type GemvVariant, type GpuLinear, type LinearArgs } from '../gpu/ops/linear.js';
import { moeExperts, moeRouter, routerGateFits, usesDecodePath, type MoeGeometry, type MoeScratch, type MoeWeightBuffers } from '../gpu/ops/moe.js';
import { rmsNorm } from '../gpu/ops/norm.js';
import { mlaKvRope, type GpuRopeTable } from '../gpu/ops/rope.js';
import type { ModelConfig } from '../model/config.js';
import { tapNames } from '../model/taps.js';
import type { KernelPlan } from '../gpu/plan.js';
import type { LatentKvCache } from './kv-cache.js';
import { kvBBuffers, type GpuWeights } from './weights-gpu.js';

/** Per-chunk activation buffers, sized for `maxTokens` tokens (f32 unless said). */
export interface Activations {
  maxTokens: number;
  tokens: GPUBuffer; // u32 [ctx]: token id at each position
  h: GPUBuffer; // [T, D] residual stream
  xn: GPUBuffer; // [T, D] normalised input of a block
  qa: GPUBuffer | null; // [T, W] q_a and kv_a stacked (weights-gpu.ts StackedLatentProj; W ≤ stackedLatentWidth), or [T, Rq]
  qan: GPUBuffer | null; // [T, Rq]
  q: GPUBuffer; // [T, H·Dq]
  kv: GPUBuffer; // [T, R + Dr]
  attn: GPUBuffer; // [T, H·Dv] attention output (o_proj input)
  a: GPUBuffer; // [T, D] o_proj output (tap attn_out)
  f: GPUBuffer; // [T, D] FFN output (tap ffn_out)
  gate: GPUBuffer; // [T, I]
  up: GPUBuffer; // [T, I]
  act: GPUBuffer; // [T, I]
  routerLogits: GPUBuffer | null; // [T, E]
  ids: GPUBuffer | null; // u32 [T, K]
  weights: GPUBuffer | null; // [T, K]
  z: GPUBuffer; // [T, D] final norm
  logits: GPUBuffer; // [T, V]
  mla: MlaScratch; // prefill (splits 1)
  mlaDecode: MlaScratch; // T = 1, split over the cache
  moe: MoeScratch | null;
}

/** Everything a chunk needs: the model on the GPU and the kernels to use. */
export interface GpuModel {
  config: ModelConfig;
  kernels: Kernels;
  weights: GpuWeights;
  cache: LatentKvCache;
  rope: GpuRopeTable;
  act: Activations;
  mla: MlaGeometry;
  moe: MoeGeometry | null;
  gemv: GemvVariant;
  gemm: GemmVariant;
  /** every kernel choice for this device and model, made once (gpu/plan.ts) */
  plan: KernelPlan;
  /** Chunks of up to this many tokens use the by-id expert kernels instead of the grouped GEMMs. */
  moeDecodeMaxTokens: number;
  /**
   * Expert offloading (engine/expert-offload.ts): the routed experts live in per-layer GPU slots that the host
   * fills between submissions, so the chunk stops at every MoE layer (encodeChunkSteps yields) until the
   * layer's experts are resident. Absent: every expert is resident and a chunk records in one go.
   */
  offload?: OffloadBuffers;
}

/** The GPU side of expert offloading that the forward pass writes (the host side is engine/expert-offload.ts). */
export interface OffloadBuffers {
  /** The next MoE layer's router on the current MoE input, for prefetch: logits [chunk, E], ids / weights [chunk, K]. */
  predLogits: GPUBuffer;
  predIds: GPUBuffer;
  predWeights: GPUBuffer;
}

/**
 * A chunk stopped at MoE layer `layer` (encodeChunkSteps): the router's ids [T, K] are recorded in `ids` and, with
 * `predicted`, the next MoE layer's predicted ids in OffloadBuffers.predIds; the driver makes wave `wave`'s experts
 * resident and answers with the wave to record.
 */
export interface ExpertsNeeded {
  layer: number;
  T: number;
  wave: number;
  ids: GPUBuffer;
  /** true when predIds holds the next MoE layer's predicted ids (only asked with wave 0) */
  predicted: boolean;
  /** the chunk runs the by-id (decode-path) kernels: waves are token ranges; else waves are sets of experts */
  decodePath: boolean;
}

/** One wave of a MoE layer under offloading: slot weights, the slot ids to read, what part of the layer it runs. */
export interface ExpertWave {
  /** the layer's slots as expert stacks (slot s = stack index s); the shared expert stays resident */
  shards: MoeWeightBuffers['shards'];
  /** slot count S (the kernels' E) */
  slots: number;
  /** u32 [T, K]: slot of each (token, k), ≥ S for a pair outside this wave (grouped path) */
  slotIds: GPUBuffer;
  /** decode path: the wave's tokens */
  tokenRange?: { t0: number; count: number };
  /** grouped path: the first wave computes the shared expert, the last one combines */
  first: boolean;
  last: boolean;
}

/**
 * Debug markers in the step's compute pass: one before each layer's dispatches and one before the head's. GPU
 * debuggers show them; `webmoe bench` counts the dispatches between them (dispatches per layer, issue #13).
 * A MoE layer's marker carries its routed-expert shard count (0 under expert offloading: slots, not shards).
 */
export function layerMarker(layer: number, moeShards: number | null): string {
  return moeShards === null ? `layer ${layer} dense` : `layer ${layer} moe shards ${moeShards}`;
}
export const HEAD_MARKER = 'head';

/** Each layer's marker, built once per weights (the step records them per layer, per token). */
const markerCache = new WeakMap<GpuWeights, string[]>();
function layerMarkersOf(w: GpuWeights): string[] {
  let list = markerCache.get(w);
  if (!list) {
    list = w.layers.map((lw, i) => layerMarker(i, lw.moe ? lw.moe.experts.shards.length : null));
    markerCache.set(w, list);
  }
  return list;
}

/** The layer marker's fields, or null for any other marker. */
export function parseLayerMarker(marker: string): { layer: number; moeShards: number | null } | null {
  const m = /^layer (\d+) (?:dense|moe shards (\d+))$/.exec(marker);
  return m ? { layer: Number(m[1]), moeShards: m[2] === undefined ? null : Number(m[2]) } : null;
}

/** Where tapped tensors go: copies into a readback buffer, one region [rows, width] per tap name. */
export interface TapSink {
  /** Records a copy of `rows` rows of `width` 32-bit values from `src` (contiguous at element 0) for `name`. */
  tap(name: string, src: GPUBuffer, rows: number, width: number, dtype: 'f32' | 'u32'): void;
}

/**
 * A command encoder with one open compute pass; `copy` closes the pass around a buffer copy (taps and the
 * readback copies), so a whole step stays in one command buffer and one submission.
 */
export class Recorder {
  private encoder: GPUCommandEncoder;
  private current: GPUComputePassEncoder;

  constructor(readonly kernels: Kernels, readonly arena: UniformArena, label: string) {
    this.encoder = kernels.gpu.device.createCommandEncoder({ label });
    this.current = this.encoder.beginComputePass({ label });
  }

  get pass(): GPUComputePassEncoder {
    return this.current;
  }

  /** Ends the recording so far and returns it, then starts a new command encoder (a submission boundary). */
  cut(): GPUCommandBuffer {
    const done = this.finish();
    this.encoder = this.kernels.gpu.device.createCommandEncoder({ label: 'step' });
    this.current = this.encoder.beginComputePass();
    return done;
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.current.end();
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
    this.current = this.encoder.beginComputePass();
  }

  finish(): GPUCommandBuffer {
    this.current.end();
    return this.encoder.finish();
  }
}

export interface ChunkArgs {
  T: number;
  /** position of the first token (its id is at tokens[p0]); with `batch`, ids are at tokens[0 .. T-1] */
  p0: number;
  /** 'none': no logits (an inner prefill chunk); 'last': row T-1 only into logits[0, :]; 'all': [T, V] */
  logits: 'none' | 'last' | 'all';
  taps?: TapSink;
  /** Batched decode: token t is the next token of its own sequence (its own cache and position). */
  batch?: BatchRows;
}

/**
 * One decode step of several sequences (batch-session.ts): row t of the chunk belongs to a sequence whose latent
 * cache is caches[t] and whose position is positions[t]. Linears, norms, the router and the experts run over all
 * rows at once, attention per row over its own cache. The kernels are the same for any number of rows (GEMM even
 * for one row, experts by id), and no kernel reduces across rows, so a row's numbers do not depend on the others.
 * q and the attention output live in their own buffers with rows padded to 64 floats, so each row can be bound at
 * a 256-byte aligned offset.
 */
export interface BatchRows {
  caches: readonly LatentKvCache[];
  positions: readonly number[];
  /** [T, qStride] */
  q: GPUBuffer;
  qStride: number;
  /** [T, attnStride] */
  attn: GPUBuffer;
  attnStride: number;
  /**
   * Latent scratch for all rows ([T, H, R + Dr] and [T, H, R], split-KV parts for one row): when one row of each
   * is a whole number of 256-byte blocks, the absorb steps run over all rows in one dispatch each and only the
   * attention itself runs per row. Null: every row takes the whole absorbed attention on its own.
   */
  latent: MlaScratch | null;
}

/** One segment of a chunk: rows t0 .. t0+T-1 go to `cache` at positions pos .. pos+T-1. */
interface Segment {
  cache: LatentKvCache;
  pos: number;
  t0: number;
  T: number;
}

/** Records the forward pass of one chunk (see the file header); every expert must be resident (no offloading). */
export function encodeChunk(m: GpuModel, rec: Recorder, a: ChunkArgs): void {
  const steps = encodeChunkSteps(m, rec, a);
  if (!steps.next().done) throw new Error('encodeChunk: an offloaded model records through encodeChunkSteps (engine/expert-offload.ts drives it)');
}

/**
 * The forward pass of one chunk as a generator: without offloading it records everything and never yields; with
 * offloading it yields at each MoE layer and each of its waves (ExpertsNeeded) and records the wave it is answered
 * (ExpertWave), so one loop serves the one-submission path and the streaming one.
 */
export function* encodeChunkSteps(m: GpuModel, rec: Recorder, a: ChunkArgs): Generator<ExpertsNeeded, void, ExpertWave> {
  const c = m.config;
  const k = m.kernels;
  const arena = rec.arena;
  const w = m.weights;
  const s = m.act;
  const { T, p0, taps } = a;
  const D = c.hidden_size;
  const eps = c.rms_norm_eps;
  const g = m.mla;
  const Dq = g.nope + g.rope;
  const L = g.rank + g.rope;
  const fuse = taps === undefined; // residual adds fused into o_proj / down / MoE combine
  const batch = a.batch;
  // a batch is batch-invariant: one kernel for any number of rows (the plan's: the decode GEMV per row, or a GEMM)
  const batchPerRow = batch !== undefined && m.plan.batchLinear === 'gemv-rows';
  const forceGemm = batch !== undefined && !batchPerRow;
  // a prefill chunk's narrow FP8 linears may run the decode GEMV per row too, where the plan measured it faster
  const perRowFor = (wt: GpuLinear): boolean =>
    batchPerRow || (batch === undefined && T > 1 && wt.format === 'fp8' && m.gemv === 'wide' && wt.cols <= m.plan.prefillGemvMaxCols);
  const lin = (wt: GpuLinear, x: GPUBuffer, y: GPUBuffer, accumulate = false, more: { xStride?: number; yStride?: number; norm?: LinearArgs['norm'] } = {}) =>
    linear(k, rec.pass, arena, { w: wt, x, y, tokens: T, accumulate, gemv: m.gemv, gemm: m.gemm, forceGemm, perRow: perRowFor(wt), ...more });
  // An RMSNorm whose every reader is a small decode GEMV of the wide family runs as their NORM prologue instead of a
  // dispatch of its own (plan.normPrologue, where the GEMV stages its x rows in workgroup memory; not in a taps run,
  // which reads the normalised tensors back)
  const fuseNorm = (nw: GPUBuffer, ...readers: GpuLinear[]) =>
    !taps && nw.size >= Math.ceil(readers[0]!.cols / 4) * 16 &&
    m.plan.normPrologue && readers.every((r) => fusesNorm(k, { w: r, tokens: T, gemv: m.gemv, forceGemm, perRow: perRowFor(r) }));
  const segments: Segment[] = batch
    ? batch.caches.map((cache, t) => ({ cache, pos: batch.positions[t]!, t0: t, T: 1 }))
    : [{ cache: m.cache, pos: p0, t0: 0, T }];
  const q = batch?.q ?? s.q;
  const qStride = batch?.qStride ?? g.heads * Dq;
  const attn = batch?.attn ?? s.attn;
  const attnStride = batch?.attnStride ?? g.heads * g.v;

  embedTokens(k, rec.pass, arena, { table: w.embed, tokens: s.tokens, tokOffset: batch ? 0 : p0, count: T, out: s.h });
  taps?.tap(tapNames.embed, s.h, T, D, 'f32');

  const markers = layerMarkersOf(w);
  for (const [i, lw] of w.layers.entries()) {
    rec.pass.insertDebugMarker(markers[i]!);
    // --- attention block
    const stacked = lw.qkvA;
    const inNorm = fuseNorm(lw.inputNorm, ...(stacked ? [stacked.w] : [lw.qA ?? lw.q!, lw.kvA!])) ? { weight: lw.inputNorm, eps } : undefined;
    const xIn = inNorm ? s.h : s.xn;
    if (!inNorm) rmsNorm(k, rec.pass, arena, { x: s.h, weight: lw.inputNorm, y: s.xn, n: D, tokens: T, eps });
    // the kv_a output rows [T, R + Dr] (with a stride when stacked with q_a)
    let kv = { buf: s.kv, offset: 0, stride: L };
    if (stacked || lw.qA) {
      // q_a (and kv_a, stacked: one GEMV) → s.qa; q_b of RMSNorm(q_a) → q
      const W = stacked ? stacked.w.rows : lw.qA!.rows;
      const Rq = stacked ? stacked.qRows : W;
      lin(stacked?.w ?? lw.qA!, xIn, s.qa!, false, { norm: inNorm });
      if (fuseNorm(lw.qANorm!, lw.qB!)) {
        lin(lw.qB!, s.qa!, q, false, { xStride: W, yStride: qStride, norm: { weight: lw.qANorm!, eps } });
      } else {
        rmsNorm(k, rec.pass, arena, { x: s.qa!, xStride: W, weight: lw.qANorm!, y: s.qan!, n: Rq, tokens: T, eps });
        lin(lw.qB!, s.qan!, q, false, { yStride: qStride });
      }
      if (stacked) kv = { buf: s.qa!, offset: stacked.kvRow, stride: W };
    } else {
      lin(lw.q!, xIn, q, false, { yStride: qStride, norm: inNorm });
    }
    if (!stacked) lin(lw.kvA!, xIn, s.kv, false, { norm: inNorm });
    const merged = batch?.latent ?? null;
    for (const sg of segments) {
      const cache = sg.cache.layers[i]!;
      // kv_a_layernorm and k_pe's RoPE into the cache row, q_pe's RoPE in place: one dispatch (mla_kv_rope.wgsl,
      // bit-identical to rmsnorm + rope_copy + rope), per row of a batch (each row its own cache)
      mlaKvRope(k, rec.pass, arena, {
        table: m.rope, tokens: sg.T, pos0: sg.pos, kv: kv.buf, kvOffset: sg.t0 * kv.stride + kv.offset, kvStride: kv.stride, norm: lw.kvANorm, eps, rank: g.rank,
        cache, cacheOffset: sg.pos * L, cacheStride: L, heads: g.heads, q: { buf: q, offset: sg.t0 * qStride + g.nope, tokenStride: qStride, headStride: Dq },
      });
      if (merged) continue;
      mlaAttend(k, rec.pass, arena, {
        q: rowSlice(q, sg.t0, qStride, sg.T), kvB: kvBBuffers(lw.kvB), cache: sg.cache.view(i), out: rowSlice(attn, sg.t0, attnStride, sg.T),
        tokens: sg.T, startPos: sg.pos, geometry: g, scale: c.derived.softmaxScale, scratch: sg.T === 1 ? s.mlaDecode : s.mla,
        tuning: { variant: attentionRows(m.plan, sg.T) }, fused: sg.T === 1 && m.plan.attendRows,
      });
    }
    if (merged) attendRowsMerged(m, rec, lw.kvB, i, segments, q, attn, merged);
    if (fuse) {
      lin(lw.o, attn, s.h, true, { xStride: attnStride });
    } else {
      lin(lw.o, attn, s.a, false, { xStride: attnStride });
      taps!.tap(tapNames.attnOut(i), s.a, T, D, 'f32');
      addInPlace(k, rec.pass, arena, { y: s.h, x: s.a, n: T * D });
    }

    // --- FFN block
    const postNorm = lw.mlp && fuseNorm(lw.postNorm, lw.mlp.gate, lw.mlp.up) ? { weight: lw.postNorm, eps } : undefined;
    // a decode step (or batched decode rows) routes in one dispatch where the plan says so: the post-attention
    // norm and the gate GEMV inside moe_router (GATE), which writes xn for the experts; never in a taps run
    const router = lw.moe?.router;
    const routerGate = !taps && m.plan.routerGate && (T === 1 || batch !== undefined) && router?.format === 'bf16' && router.chunks.length === 1 &&
      routerGateFits(k, D, router.rows);
    const routerNorm = lw.moe && !routerGate && fuseNorm(lw.postNorm, lw.moe.router) ? { weight: lw.postNorm, eps } : undefined;
    if (!postNorm && !routerNorm && !routerGate) rmsNorm(k, rec.pass, arena, { x: s.h, weight: lw.postNorm, y: s.xn, n: D, tokens: T, eps });
    const out = fuse ? s.h : s.f;
    if (lw.mlp) {
      lin(lw.mlp.gate, postNorm ? s.h : s.xn, s.gate, false, { norm: postNorm });
      lin(lw.mlp.up, postNorm ? s.h : s.xn, s.up, false, { norm: postNorm });
      swiglu(k, rec.pass, arena, { gate: s.gate, up: s.up, out: s.act, n: T * lw.mlp.gate.rows });
      lin(lw.mlp.down, s.act, out, fuse);
    } else {
      const moe = lw.moe!;
      const mg = m.moe!;
      taps?.tap(tapNames.moeInput(i), s.xn, T, D, 'f32');
      if (routerNorm) {
        // the post-attention norm as the router GEMV's prologue, xn written on the side for the experts
        lin(moe.router, s.h, s.routerLogits!, false, { norm: { ...routerNorm, out: s.xn } });
      } else if (!routerGate) {
        lin(moe.router, s.xn, s.routerLogits!);
      }
      moeRouter(k, rec.pass, arena, {
        logits: s.routerLogits!, bias: moe.bias, ids: s.ids!, weights: s.weights!, tokens: T,
        experts: mg.experts, topK: mg.topK, groups: c.n_group, topkGroups: c.topk_group,
        normTopkProb: c.norm_topk_prob, scaling: c.routed_scaling_factor,
        gate: routerGate ? { h: s.h, codes: moe.router.chunks[0]!.codes, strideWords: moe.router.strideWords, norm: lw.postNorm, eps, xn: s.xn, hidden: D } : undefined,
      });
      taps?.tap(tapNames.moeTopkIdx(i), s.ids!, T, mg.topK, 'u32');
      taps?.tap(tapNames.moeTopkWeight(i), s.weights!, T, mg.topK, 'f32');
      // a batch always takes the decode path with the plan's batch variant (by expert) for any number of rows: the
      // grouped kernels would make a row's sums depend on the others
      const decodeMax = batch ? T : m.moeDecodeMaxTokens;
      const variant = batch ? m.plan.moeBatch : m.plan.moeDecode;
      const experts = { x: s.xn, weights: s.weights!, out, accumulate: fuse, tokens: T, scratch: s.moe!, variant, wide: m.plan.moeWide, prefill: m.plan.moePrefill, tiled: m.plan.moeTiled };
      if (!m.offload) {
        moeExperts(k, rec.pass, arena, { ...experts, ids: s.ids!, geometry: mg, w: moe.experts }, decodeMax);
      } else {
        const next = w.layers.findIndex((l, j) => j > i && l.moe !== null);
        const o = m.offload;
        if (next >= 0) {
          lin(w.layers[next]!.moe!.router, s.xn, o.predLogits);
          moeRouter(k, rec.pass, arena, {
            logits: o.predLogits, bias: w.layers[next]!.moe!.bias, ids: o.predIds, weights: o.predWeights, tokens: T,
            experts: mg.experts, topK: mg.topK, groups: c.n_group, topkGroups: c.topk_group,
            normTopkProb: c.norm_topk_prob, scaling: c.routed_scaling_factor,
          });
        }
        const decodePath = usesDecodePath(T, s.moe!, decodeMax);
        for (let wave = 0; ; wave++) {
          const wv: ExpertWave = yield { layer: i, T, wave, ids: s.ids!, predicted: next >= 0 && wave === 0, decodePath };
          moeExperts(k, rec.pass, arena, {
            ...experts, ids: wv.slotIds, geometry: { ...mg, experts: wv.slots }, w: { shards: wv.shards, shared: moe.experts.shared },
            tokenRange: wv.tokenRange, includeShared: decodePath || wv.first, combine: decodePath || wv.last,
          }, decodeMax);
          if (wv.last) break;
        }
      }
    }
    if (!fuse) {
      taps!.tap(tapNames.ffnOut(i), s.f, T, D, 'f32');
      addInPlace(k, rec.pass, arena, { y: s.h, x: s.f, n: T * D });
      taps!.tap(tapNames.hidden(i), s.h, T, D, 'f32');
    }
  }

  // --- head
  rec.pass.insertDebugMarker(HEAD_MARKER);
  if (a.logits === 'none' && !taps) return;
  const rows = a.logits === 'last' && !taps ? 1 : T;
  if (a.logits === 'last' && !taps && fuseNorm(w.norm, w.lmHead) && fusesNorm(k, { w: w.lmHead, tokens: 1 })) {
    // the final norm as lm_head's NORM prologue (the head's GEMV is the family's for BF16 / INT4 lm_head)
    linear(k, rec.pass, arena, { w: w.lmHead, x: s.h, xOffset: (T - 1) * D, y: s.logits, tokens: 1, norm: { weight: w.norm, eps } });
    return;
  }
  rmsNorm(k, rec.pass, arena, { x: s.h, xOffset: (T - rows) * D, weight: w.norm, y: s.z, n: D, tokens: rows, eps });
  taps?.tap(tapNames.finalNorm, s.z, T, D, 'f32');
  if (a.logits === 'none') return;
  if (a.logits === 'last') {
    linear(k, rec.pass, arena, { w: w.lmHead, x: s.z, xOffset: (rows - 1) * D, y: s.logits, tokens: 1 });
  } else {
    linear(k, rec.pass, arena, { w: w.lmHead, x: s.z, y: s.logits, tokens: T, forceGemm, perRow: batchPerRow });
  }
}

/**
 * Batched decode with aligned latent rows: absorb_q over all rows, the attention of each row over its own cache
 * (the split-KV choice as mlaAttend makes it for one token), absorb_v over all rows. q and attn are contiguous.
 */
function attendRowsMerged(m: GpuModel, rec: Recorder, kvBw: GpuLinear, layer: number, rows: Segment[], q: GPUBuffer, attn: GPUBuffer, sc: MlaScratch): void {
  const g = m.mla;
  const k = m.kernels;
  const T = rows.length;
  const kvB = kvBBuffers(kvBw);
  const L = g.rank + g.rope;
  mlaAbsorbQ(k, rec.pass, rec.arena, { q, kvB, qLat: sc.qLat, tokens: T, geometry: g });
  for (const r of rows) {
    mlaAttention(k, rec.pass, rec.arena, {
      qLat: rowSlice(sc.qLat, r.t0, g.heads * L, 1), cache: r.cache.view(layer), oLat: rowSlice(sc.oLat, r.t0, g.heads * g.rank, 1),
      tokens: 1, startPos: r.pos, geometry: g, scale: m.config.derived.softmaxScale,
      splits: chooseSplits(1, r.pos + 1, g, sc.maxSplits, m.plan.decodeSplits), partO: sc.partO ?? undefined, partML: sc.partML ?? undefined,
      tuning: { variant: attentionRows(m.plan, 1) },
    });
  }
  mlaAbsorbV(k, rec.pass, rec.arena, { oLat: sc.oLat, kvB, out: attn, tokens: T, geometry: g });
}

/** True when one row of the latent scratch ([H, R + Dr] and [H, R] floats) is a whole number of 256-byte blocks. */
export function latentRowsAligned(g: MlaGeometry): boolean {
  return (g.heads * (g.rank + g.rope)) % 64 === 0 && (g.heads * g.rank) % 64 === 0;
}

/** Rows t0 .. t0+T-1 of a [*, stride] f32 buffer as a binding (the whole buffer when t0 = 0). */
function rowSlice(buf: GPUBuffer, t0: number, stride: number, T: number): GPUBuffer | GPUBufferBinding {
  return t0 === 0 ? buf : { buffer: buf, offset: t0 * stride * 4, size: T * stride * 4 };
}

/** The plan's attention kernel for T query tokens. */
function attentionRows(p: KernelPlan, T: number): 'rows' | 'tiled' {
  return (T === 1 ? p.attentionRows.decode : p.attentionRows.prefill) ? 'rows' : 'tiled';
}
