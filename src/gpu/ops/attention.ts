/**
 * MLA attention on the GPU, absorbed form over the latent cache (docs/model.md §4.5), for prefill AND decode.
 *
 * Legend: T query tokens in the chunk, p0 position of its first token (tokens at p0 .. p0+T-1), S = p0 + T
 * cached tokens visible to the chunk, H heads, Dn / Dr / Dv nope / rope / v head dims, Dq = Dn + Dr,
 * R = R kv_lora_rank, L = R + Dr (latent query / cache row width).
 *
 * Layouts (all f32 unless said; "[a, b]" is row-major):
 *   q       [T, H, Dq]       q_b_proj output per head [q_nope (Dn) | q_pe (Dr)], q_pe ALREADY rotated (RoPE)
 *   kv_b    FP8 [H·(Dn+Dv), R] in the padded-row layout of fp8-layout.ts (+ scales [⌈H(Dn+Dv)/128⌉, ⌈R/128⌉]),
 *           or BF16 [H·(Dn+Dv), R] (2 codes per u32, bf16RowStrideWords, no scales) for checkpoints without
 *           quantization_config: the absorb launchers then run the _bf16 instances of the absorb kernel families
 *           (same grid, same math)
 *   cache   the latent cache of one layer (LatentCacheView). RECOMMENDED (fusedCacheView): ONE buffer
 *           [ctx, R + Dr], row j = [ĉ_j (R, post kv_a_layernorm) | k_pe_j (Dr, post RoPE)], i.e. exactly the
 *           kv_a_proj_with_mqa output row, normalised / rotated in place. Separate buffers [ctx, R] and
 *           [ctx, Dr] work too (any row strides). The caller (engine/forward.ts: rmsnorm + rope into the cache) writes rows p0 .. p0+T-1 before these launchers run.
 *   qLat    [T, H, L]        scratch: [q̃ = W_UK[h]^T q_nope (R) | q_pe (Dr)]
 *   oLat    [T, H, R]        scratch: ō = Σ_j P_j ĉ_j (normalised)
 *   out     [T, H·Dv]        o[t, h, :] = W_UV[h] ō[t, h]: the o_proj input
 *   split scratch (only when splits > 1): partO [splits, T·H, R], partML [splits, T·H, 2] (running max, sum)
 *
 * Dispatches (mlaAttend records all of them; the pieces are exported for tests and custom wiring):
 *   1. mla_absorb_q       qLat from q and kv_b's K half (FP8 read directly, never dequantised to memory;
 *                         BF16 kv_b: mla_absorb_q_bf16, the family's BF16 instance)
 *   2. mla_attention      flash attention over the cache: rows = (t, h) pairs, BM rows per workgroup share
 *                         each cache tile (one pass over the cache for all heads of a token when H ≤ BM),
 *                         online softmax, causal rule key j visible iff j ≤ p0 + t (docs/model.md §4.4, any p0);
 *                         optional split of the key range (flash-decoding) → partials.
 *                         lavapipe gets mla_attention_rows (same contract, one invocation per row, no
 *                         barriers or workgroup memory; ~3.5x faster prefill there), see
 *                         MlaAttentionTuning.variant
 *   3. mla_decode_reduce  (splits > 1 only) merges the partials: ō = Σ_s e^{m_s−M} o_s / Σ_s e^{m_s−M} l_s
 *   4. mla_absorb_v       out from oLat and kv_b's V half (BF16 kv_b: mla_absorb_v_bf16)
 * No [T, T] (or [T, S]) score matrix ever exists in memory; the cache tile lives in workgroup memory.
 * The absorption (q̃ = W_UK^T q_nope, o = W_UV ō) is done by our two kernel families (FP8 or BF16 instance,
 * mla_absorb_q_bf16 / mla_absorb_v_bf16, picked by kv_b's format), not by the dense GEMM (ops/linear.ts):
 * they are batched per head over kv_b's halves, a layout a plain [out, in] GEMM does not cover.
 * Decode: pass a scratch with maxSplits > 1 (chooseSplits splits caches ≥ 2·256 keys when the row blocks
 * alone cannot fill the device).
 *
 * CPU counterparts: model/reference.ts attentionAbsorbed (and attentionNaive: same math, other order).
 */
import { adapterClass } from './adapter-class.js';
import { ShapeError } from '../../errors.js';
import { createBuffer, type UniformArena } from '../buffers.js';
import type { GpuContext } from '../device.js';
import type { Kernels } from '../kernels.js';
import { bf16RowStrideWords, fp8RowStrideWords, scaleGrid } from './fp8-layout.js';
import { requireBytes, requireInt, weightFormat, type Buf, type WeightBuffers } from './binding.js';
import { unusedBuffer } from './unused.js';
import { attentionVariant, CPU_DECODE_SPLITS, decodeSplitRule, MLA_ROWS_MAX_L, MLA_ROWS_MAX_R, type DecodeSplitRule } from '../plan.js';

/** Attention geometry (same field names as model/reference.ts MlaShape, minus the scale). */
export interface MlaGeometry {
  heads: number; // H
  nope: number; // Dn
  rope: number; // Dr
  v: number; // Dv
  rank: number; // R = kv_lora_rank
}

/** How the attention kernel finds ĉ_j and k_pe_j of cached token j (element offsets, f32). */
export interface LatentCacheView {
  /** ĉ_j[r] at c[j * cStride + r] */
  c: Buf;
  cStride: number;
  /** k_pe_j[i] at pe[j * peStride + peOffset + i] (pe may be the same buffer as c) */
  pe: Buf;
  peStride: number;
  peOffset: number;
}

/** The recommended cache: one buffer [ctx, R + Dr] per layer, row = [ĉ | k_pe]. */
export function fusedCacheView(cache: Buf, g: MlaGeometry): LatentCacheView {
  const L = g.rank + g.rope;
  return { c: cache, cStride: L, pe: cache, peStride: L, peOffset: g.rank };
}

/** kv_b_proj on the GPU: FP8 [H·(Dn+Dv), R] (+ scales) or BF16 (`format: 'bf16'`), padded rows (fp8-layout.ts). */
export type KvBWeight = WeightBuffers;

/** Scratch for mlaAttend, sized for up to maxTokens query tokens and maxSplits splits. */
export interface MlaScratch {
  maxTokens: number;
  maxSplits: number;
  qLat: GPUBuffer; // [maxTokens, H, L]
  oLat: GPUBuffer; // [maxTokens, H, R]
  partO: GPUBuffer | null; // [maxSplits, maxTokens·H, R]
  partML: GPUBuffer | null; // [maxSplits, maxTokens·H, 2]
}

export function createMlaScratch(gpu: GpuContext, g: MlaGeometry, maxTokens: number, maxSplits = 1): MlaScratch {
  const L = g.rank + g.rope;
  const rows = maxTokens * g.heads;
  return {
    maxTokens,
    maxSplits,
    qLat: createBuffer(gpu, rows * L * 4, 'mla.qLat'),
    oLat: createBuffer(gpu, rows * g.rank * 4, 'mla.oLat'),
    partO: maxSplits > 1 ? createBuffer(gpu, maxSplits * rows * g.rank * 4, 'mla.partO') : null,
    partML: maxSplits > 1 ? createBuffer(gpu, maxSplits * rows * 2 * 4, 'mla.partML') : null,
  };
}

/**
 * Floats of mla_attention's cache tile: what the device's workgroup memory allows beside the kernel's other
 * arrays, at most 4096 (16 KiB); 1024 on software adapters, whose shader compilers take ~2 ms per workgroup
 * array element (SwiftShader: 4.8 s for a 2048-float tile).
 */
export function attentionTileFloats(gpu: GpuContext): number {
  return Math.min(gpu.info.software ? 1024 : 4096, Math.floor((gpu.limits.maxComputeWorkgroupStorageSize - 1536) / 4));
}

/** Tunables of mla_attention (override constants). */
export interface MlaAttentionTuning {
  /**
   * 'tiled' (mla_attention.wgsl: BM rows share cache tiles in workgroup memory; for GPUs) or 'rows'
   * (mla_attention_rows.wgsl: one invocation per row, no barriers; ~3.5x faster prefill on lavapipe, equal on
   * SwiftShader but slow to compile there). Default (preferRows): 'rows' on lavapipe/llvmpipe, and on SwiftShader
   * for one token, when R ≤ 512 and R + Dr ≤ 640, else 'tiled'.
   */
  variant?: 'tiled' | 'rows';
  /** threads per workgroup (default 64) */
  wg?: number;
  /** (t, h) rows per workgroup (default min(8, T·H)); BM · ⌈R / wg⌉ ≤ 64 */
  bm?: number;
  /** cache rows per tile (default: as many as attentionTileFloats allows, 1..16) */
  bn?: number;
}

const MAX_ACC = 64; // private accumulator slots per thread in mla_attention.wgsl
const MAX_TT = 8; // tokens per thread in the absorb kernels

/**
 * Number of key splits for a chunk: split only when the row blocks alone cannot fill the device and the
 * cache is long (flash-decoding). `rule.minChunk` keys per split at least, until row blocks x splits reaches
 * `rule.targetWorkgroups` (plan.ts decodeSplitRule; default the CPU adapters' rule).
 */
export function chooseSplits(T: number, S: number, g: MlaGeometry, maxSplits: number, rule: Omit<DecodeSplitRule, 'maxSplits'> = CPU_DECODE_SPLITS): number {
  const { minChunk, targetWorkgroups } = rule;
  const rowBlocks = Math.ceil((T * g.heads) / Math.min(8, T * g.heads));
  if (rowBlocks >= targetWorkgroups) return 1;
  const want = Math.ceil(targetWorkgroups / rowBlocks);
  return Math.max(1, Math.min(maxSplits, want, Math.floor(S / minChunk)));
}

function checkGeometry(g: MlaGeometry, kernel: string): void {
  requireInt(g.heads, 1, kernel, 'heads');
  requireInt(g.nope, 1, kernel, 'nope');
  requireInt(g.rope, 0, kernel, 'rope');
  requireInt(g.v, 1, kernel, 'v');
  requireInt(g.rank, 1, kernel, 'rank');
}

function checkKvB(gpu: GpuContext, w: KvBWeight, g: MlaGeometry, kernel: string): { rowStride: number; scaleCols: number } {
  const rows = g.heads * (g.nope + g.v);
  if (w.format === 'bf16') {
    const rowStride = bf16RowStrideWords(g.rank);
    requireBytes(gpu, w.codes, rows * rowStride * 4, kernel, 'kv_b.codes');
    return { rowStride, scaleCols: 0 };
  }
  const rowStride = fp8RowStrideWords(g.rank);
  const [sr, sc] = scaleGrid(rows, g.rank);
  requireBytes(gpu, w.codes, rows * rowStride * 4, kernel, 'kv_b.codes');
  requireBytes(gpu, w.scales, sr * sc * 4, kernel, 'kv_b.scales');
  return { rowStride, scaleCols: sc };
}

/** kv_b's scales as the absorb families bind them: one layout for both formats, any 16 bytes for BF16 (not read). */
function kvBScales(k: Kernels, w: KvBWeight): Buf {
  return w.format === 'bf16' ? unusedBuffer(k) : w.scales;
}

function tokensPerThread(T: number): number {
  return Math.min(MAX_TT, Math.max(1, T));
}

/** q [T, H, Dq] → qLat [T, H, R + Dr] = [W_UK[h]^T q_nope[t, h] | q_pe[t, h]]. */
export function mlaAbsorbQ(
  k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena,
  a: { q: Buf; kvB: KvBWeight; qLat: Buf; tokens: number; geometry: MlaGeometry },
): void {
  const bf16 = weightFormat(a.kvB) === 'bf16';
  const name = bf16 ? 'mla_absorb_q_bf16' : 'mla_absorb_q';
  const g = a.geometry;
  checkGeometry(g, name);
  requireInt(a.tokens, 1, name, 'tokens');
  const T = a.tokens;
  const L = g.rank + g.rope;
  requireBytes(k.gpu, a.q, T * g.heads * (g.nope + g.rope) * 4, name, 'q');
  requireBytes(k.gpu, a.qLat, T * g.heads * L * 4, name, 'qLat');
  const { rowStride, scaleCols } = checkKvB(k.gpu, a.kvB, g, name);
  const WG = 64;
  const TT = tokensPerThread(T);
  k.run(pass, arena, name, {
    constants: { WG },
    bind: { xin: a.q, w: a.kvB.codes, scale: kvBScales(k, a.kvB), out: a.qLat },
    params: { T, H: g.heads, Dn: g.nope, Dr: g.rope, Dv: g.v, R: g.rank, rowStride, scaleCols, TT, p0: 0, cStride: 0, peStride: 0, peOffset: 0, scale: 0 },
    grid: [Math.max(1, Math.ceil(Math.ceil(g.rank / 4) / WG)), g.heads, Math.ceil(T / TT)],
  });
}

/** oLat [T, H, R] → out [T, H·Dv], out[t, h, d] = W_UV[h][d, :] · ō[t, h]. */
export function mlaAbsorbV(
  k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena,
  a: { oLat: Buf; kvB: KvBWeight; out: Buf; tokens: number; geometry: MlaGeometry },
): void {
  const bf16 = weightFormat(a.kvB) === 'bf16';
  const name = bf16 ? 'mla_absorb_v_bf16' : 'mla_absorb_v';
  const g = a.geometry;
  checkGeometry(g, name);
  requireInt(a.tokens, 1, name, 'tokens');
  const T = a.tokens;
  requireBytes(k.gpu, a.oLat, T * g.heads * g.rank * 4, name, 'oLat');
  requireBytes(k.gpu, a.out, T * g.heads * g.v * 4, name, 'out');
  const { rowStride, scaleCols } = checkKvB(k.gpu, a.kvB, g, name);
  const WG = 64;
  const TT = tokensPerThread(T);
  k.run(pass, arena, name, {
    constants: { WG },
    bind: { xin: a.oLat, w: a.kvB.codes, scale: kvBScales(k, a.kvB), out: a.out },
    params: { T, H: g.heads, Dn: g.nope, Dr: g.rope, Dv: g.v, R: g.rank, rowStride, scaleCols, TT, p0: 0, cStride: 0, peStride: 0, peOffset: 0, scale: 0 },
    grid: [Math.ceil(g.v / WG), g.heads, Math.ceil(T / TT)],
  });
}

export interface MlaAttentionArgs {
  /** [T, H, R + Dr] from mlaAbsorbQ */
  qLat: Buf;
  cache: LatentCacheView;
  /** [T, H, R] normalised ō */
  oLat: Buf;
  tokens: number; // T
  startPos: number; // p0
  geometry: MlaGeometry;
  /** softmax_scale = Dq^-0.5 · mscale² (docs/model.md §4.4) */
  scale: number;
  /** key-range splits (default 1); > 1 needs partO / partML */
  splits?: number;
  partO?: Buf;
  partML?: Buf;
  tuning?: MlaAttentionTuning;
}

/** Flash attention of qLat against the latent cache rows 0 .. p0+T-1 (causal), → oLat (+ reduce when split). */
export function mlaAttention(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: MlaAttentionArgs): void {
  const name = 'mla_attention';
  const g = a.geometry;
  checkGeometry(g, name);
  requireInt(a.tokens, 1, name, 'tokens');
  requireInt(a.startPos, 0, name, 'startPos');
  const T = a.tokens;
  const H = g.heads;
  const R = g.rank;
  const L = R + g.rope;
  const S = a.startPos + T;
  const rows = T * H;
  const splits = a.splits ?? 1;
  requireInt(splits, 1, name, 'splits', S);
  const c = a.cache;
  requireBytes(k.gpu, a.qLat, rows * L * 4, name, 'qLat');
  requireBytes(k.gpu, a.oLat, rows * R * 4, name, 'oLat');
  if (c.cStride < R || (c.c === c.pe && c.peStride === c.cStride && c.peOffset < R && g.rope > 0)) {
    throw new ShapeError(`${name}: cache view overlaps (cStride ${c.cStride}, peOffset ${c.peOffset}, R ${R})`, 'cache');
  }
  requireBytes(k.gpu, c.c, ((S - 1) * c.cStride + R) * 4, name, 'cache.c');
  requireBytes(k.gpu, c.pe, ((S - 1) * c.peStride + c.peOffset + g.rope) * 4, name, 'cache.pe');

  const variant = a.tuning?.variant ?? attentionVariant(k.gpu, T, R, L);
  if (variant === 'rows' && (R > MLA_ROWS_MAX_R || L > MLA_ROWS_MAX_L)) {
    throw new ShapeError(`mla_attention_rows: R = ${R}, R + Dr = ${L} exceed ${MLA_ROWS_MAX_R}, ${MLA_ROWS_MAX_L}; use the tiled variant`, 'tuning');
  }
  const WG = a.tuning?.wg ?? (variant === 'rows' ? 16 : 64);
  const rpt = Math.ceil(R / WG);
  const tileFloats = attentionTileFloats(k.gpu);
  const bn = a.tuning?.bn ?? Math.max(1, Math.min(16, Math.floor(tileFloats / L)));
  const bm = variant === 'rows' ? WG : a.tuning?.bm ?? Math.max(1, Math.min(8, rows, Math.floor(MAX_ACC / rpt), Math.floor(256 / bn)));
  if (variant === 'tiled' && (bm * rpt > MAX_ACC || bm * bn > 256 || bm > 64 || bn * L > tileFloats)) {
    throw new ShapeError(
      `${name}: BM ${bm}, BN ${bn} do not fit (BM·⌈R/WG⌉ = ${bm * rpt} ≤ ${MAX_ACC}, BM·BN ≤ 256, BN·L = ${bn * L} ≤ ${tileFloats} floats); raise wg or lower bm/bn`,
      'tuning',
    );
  }
  const chunk = Math.ceil(S / splits);
  const rowBlocks = Math.ceil(rows / bm);
  const split = splits > 1;
  if (split) {
    if (!a.partO || !a.partML) throw new ShapeError(`${name}: splits = ${splits} needs partO and partML scratch`, 'partO');
    requireBytes(k.gpu, a.partO, splits * rows * R * 4, name, 'partO');
    requireBytes(k.gpu, a.partML, splits * rows * 2 * 4, name, 'partML');
  }
  // the tile is sized to the shape (rounded to 64 floats): SwiftShader's compile time grows with array sizes
  const tile = Math.ceil((bn * L) / 64) * 64;
  k.run(pass, arena, variant === 'rows' ? 'mla_attention_rows' : name, {
    constants: variant === 'rows' ? { WG } : { WG, TILE: tile, SC: Math.ceil((bm * bn) / 16) * 16, ROWS: Math.ceil(bm / 4) * 4 },
    // outputs: split → (partO, partML); no split → (oLat, an unused 16-byte buffer)
    bind: { qLat: a.qLat, cacheC: c.c, cachePe: c.pe, outO: split ? a.partO! : a.oLat, outML: split ? a.partML! : unusedBuffer(k) },
    params: {
      T, H, R, Dr: g.rope, p0: a.startPos, cStride: c.cStride, peStride: c.peStride, peOffset: c.peOffset,
      scale: a.scale, chunk, split: split ? 1 : 0, rpt, BM: bm, BN: bn,
    },
    grid: [rowBlocks, splits],
  });
  if (split) {
    const RWG = 64;
    k.run(pass, arena, 'mla_decode_reduce', {
      constants: { WG: RWG },
      bind: { partO: a.partO!, partML: a.partML!, oLat: a.oLat },
      params: { rows, R, splits },
      grid: [Math.ceil(R / RWG), rows],
    });
  }
}

export interface MlaAttendArgs {
  /** [T, H, Dq], q_pe rotated */
  q: Buf;
  kvB: KvBWeight;
  cache: LatentCacheView;
  /** [T, H·Dv] */
  out: Buf;
  tokens: number;
  startPos: number;
  geometry: MlaGeometry;
  scale: number;
  scratch: MlaScratch;
  /** default: chooseSplits(T, S, geometry, scratch.maxSplits, decodeSplitRule) */
  splits?: number;
  tuning?: MlaAttentionTuning;
  /** one dispatch (mla_attend_rows) when the chunk has no key split (plan.ts chooseAttendRows; default false) */
  fused?: boolean;
}

/**
 * The whole absorbed attention of one layer: absorb_q → attention (→ reduce) → absorb_v, or with `fused` and no key
 * split the one dispatch of mlaAttendRows.
 */
export function mlaAttend(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: MlaAttendArgs): void {
  const s = a.scratch;
  if (a.tokens > s.maxTokens) throw new ShapeError(`mla: ${a.tokens} tokens exceed the scratch's ${s.maxTokens}`, 'tokens', s.maxTokens, a.tokens);
  const S = a.startPos + a.tokens;
  const splits = a.splits ?? chooseSplits(a.tokens, S, a.geometry, s.maxSplits, decodeSplitRule(k.gpu));
  if (a.fused && splits === 1) {
    mlaAttendRows(k, pass, arena, a);
    return;
  }
  mlaAbsorbQ(k, pass, arena, { q: a.q, kvB: a.kvB, qLat: s.qLat, tokens: a.tokens, geometry: a.geometry });
  mlaAttention(k, pass, arena, {
    qLat: s.qLat, cache: a.cache, oLat: s.oLat, tokens: a.tokens, startPos: a.startPos, geometry: a.geometry,
    scale: a.scale, splits, partO: s.partO ?? undefined, partML: s.partML ?? undefined, tuning: a.tuning,
  });
  mlaAbsorbV(k, pass, arena, { oLat: s.oLat, kvB: a.kvB, out: a.out, tokens: a.tokens, geometry: a.geometry });
}

/**
 * The whole absorbed attention of T query tokens in one dispatch (mla_attend_rows, BF16 kv_b: mla_attend_rows_bf16):
 * one invocation per (t, h) row runs absorb_q, the walk over keys 0 .. p0+t (no split) and absorb_v. The same
 * results as mlaAbsorbQ → mlaAttention (rows variant, one split) → mlaAbsorbV up to f32 rounding.
 */
export function mlaAttendRows(
  k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena,
  a: { q: Buf; kvB: KvBWeight; cache: LatentCacheView; out: Buf; tokens: number; startPos: number; geometry: MlaGeometry; scale: number },
): void {
  const bf16 = weightFormat(a.kvB) === 'bf16';
  const name = bf16 ? 'mla_attend_rows_bf16' : 'mla_attend_rows';
  const g = a.geometry;
  checkGeometry(g, name);
  requireInt(a.tokens, 1, name, 'tokens');
  requireInt(a.startPos, 0, name, 'startPos');
  const T = a.tokens;
  const R = g.rank;
  const L = R + g.rope;
  const S = a.startPos + T;
  if (R > MLA_ROWS_MAX_R || L > MLA_ROWS_MAX_L) {
    throw new ShapeError(`${name}: R = ${R}, R + Dr = ${L} exceed ${MLA_ROWS_MAX_R}, ${MLA_ROWS_MAX_L}; use the unfused kernels`, 'geometry');
  }
  const c = a.cache;
  requireBytes(k.gpu, a.q, T * g.heads * (g.nope + g.rope) * 4, name, 'q');
  requireBytes(k.gpu, a.out, T * g.heads * g.v * 4, name, 'out');
  requireBytes(k.gpu, c.c, ((S - 1) * c.cStride + R) * 4, name, 'cache.c');
  requireBytes(k.gpu, c.pe, ((S - 1) * c.peStride + c.peOffset + g.rope) * 4, name, 'cache.pe');
  const { rowStride, scaleCols } = checkKvB(k.gpu, a.kvB, g, name);
  const WG = 16;
  k.run(pass, arena, name, {
    constants: { WG },
    bind: { xin: a.q, cacheC: c.c, cachePe: c.pe, w: a.kvB.codes, scale: kvBScales(k, a.kvB), out: a.out },
    params: {
      T, H: g.heads, Dn: g.nope, Dr: g.rope, Dv: g.v, R, rowStride, scaleCols, TT: 1,
      p0: a.startPos, cStride: c.cStride, peStride: c.peStride, peOffset: c.peOffset, scale: a.scale,
    },
    grid: [Math.ceil((T * g.heads) / WG)],
  });
}
