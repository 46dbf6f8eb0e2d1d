/**
 * The CPU reference forward pass of DeepseekV3ForCausalLM (Kimi K2, DeepSeek-V3): webmoe's executable spec
 * (docs/model.md §4–§8) and the oracle for every GPU kernel. Plain loops, Float64Array activations,
 * f32 weights dequantised once (cpu-weights.ts); no caching beyond the latent KV cache.
 *
 *   embed → per layer [ RMSNorm → MLA → +residual → RMSNorm → dense MLP | MoE (router + experts + shared) →
 *   +residual ] → RMSNorm → lm_head
 *
 * Legend: T tokens in the chunk, S tokens in the cache (this chunk included), D hidden, V vocab, H heads,
 * Dn / Dr / Dv nope / rope / v head dims, Dq = Dn + Dr, Rq q_lora_rank, R kv_lora_rank, F an FFN width,
 * E routed experts, K experts per token.
 */
import { ContextOverflowError, InputError, ShapeError } from '../errors.js';
import type { ModelConfig } from './config.js';
import type { AttnWeights, CpuWeights, FfnWeights, Matrix, MoeWeights } from './cpu-weights.js';
import { applyRope, ropeTables, type RopeTables } from './rope.js';
import { moeRoute, type RouterConfig } from './router.js';
import { recordTap, tapNames, type TapMap } from './taps.js';

// ------------------------------------------------------------------------------------------------------------
// Building blocks. Each one is the CPU counterpart of a kernel (named in the kernel's header).

/** y = W·x for one row: out[outAt + r] = Σ_c W[r, c] · x[xAt + c], accumulated in f64. */
export function matVec(W: Matrix, x: Float64Array, xAt: number, out: Float64Array, outAt: number): void {
  const { rows, cols, data } = W;
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    const w = r * cols;
    for (let c = 0; c < cols; c++) acc += data[w + c]! * x[xAt + c]!;
    out[outAt + r] = acc;
  }
}

/** x @ W^T: [T, in] → [T, out] (PyTorch layout W[out, in]). */
export function linear(x: Float64Array, W: Matrix): Float64Array {
  if (x.length % W.cols !== 0) throw new ShapeError(`linear: input of ${x.length} values is not [T, ${W.cols}]`, undefined, W.cols, x.length);
  const T = x.length / W.cols;
  const out = new Float64Array(T * W.rows);
  for (let t = 0; t < T; t++) matVec(W, x, t * W.cols, out, t * W.rows);
  return out;
}

/** RMSNorm per row: w_i · x_i / sqrt(mean(x²) + eps). [T, n] → [T, n] with n = w.length (docs/model.md §4.2). */
export function rmsNorm(x: Float64Array, w: ArrayLike<number>, eps: number): Float64Array {
  const n = w.length;
  if (x.length % n !== 0) throw new ShapeError(`rmsNorm: input of ${x.length} values is not [T, ${n}]`, undefined, n, x.length);
  const out = new Float64Array(x.length);
  for (let at = 0; at < x.length; at += n) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[at + i]! * x[at + i]!;
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[at + i] = w[i]! * x[at + i]! * inv;
  }
  return out;
}

export function silu(z: number): number {
  return z / (1 + Math.exp(-z));
}

/** silu(gate) ⊙ up, elementwise: [T, F], [T, F] → [T, F]. */
export function swiglu(gate: Float64Array, up: Float64Array): Float64Array {
  if (gate.length !== up.length) throw new ShapeError('swiglu: gate and up differ in size', undefined, gate.length, up.length);
  const out = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) out[i] = silu(gate[i]!) * up[i]!;
  return out;
}

/** SwiGLU FFN (docs/model.md §6.4): down(silu(gate·x) ⊙ up·x). [T, D] → [T, D]. */
export function ffn(x: Float64Array, w: FfnWeights): Float64Array {
  return linear(swiglu(linear(x, w.gate), linear(x, w.up)), w.down);
}

/** In-place softmax of x[at .. at+n); −inf entries get probability 0 (at least one must be finite). */
export function softmaxInPlace(x: Float64Array, at = 0, n = x.length - at): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, x[at + i]!);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[at + i] = Math.exp(x[at + i]! - max);
  for (let i = 0; i < n; i++) x[at + i]! /= sum;
}

/** Embedding lookup: ids [T] → [T, D]. Ids must already be checked (checkTokens). */
export function embed(tokens: readonly number[], table: Matrix): Float64Array {
  const D = table.cols;
  const out = new Float64Array(tokens.length * D);
  tokens.forEach((id, t) => {
    for (let i = 0; i < D; i++) out[t * D + i] = table.data[id * D + i]!;
  });
  return out;
}

/** Throws InputError unless `tokens` is a non-empty list of integer ids in [0, vocab). */
export function checkTokens(tokens: readonly number[], vocab: number): void {
  if (tokens.length === 0) throw new InputError('no tokens given: need at least one token id', 'tokens');
  for (const id of tokens) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new InputError(`token id ${id} is outside the vocabulary (vocab_size ${vocab}: ids 0..${vocab - 1})`, 'tokens');
    }
  }
}

// ------------------------------------------------------------------------------------------------------------
// MLA (docs/model.md §4.4 naive, §4.5 absorbed)

/** The attention geometry. */
export interface MlaShape {
  heads: number; // H
  nope: number; // Dn
  rope: number; // Dr
  v: number; // Dv
  rank: number; // R
  /** Dq^-0.5 · mscale² (docs/model.md §4.4) */
  scale: number;
}

export function mlaShape(c: ModelConfig): MlaShape {
  return {
    heads: c.num_attention_heads,
    nope: c.qk_nope_head_dim,
    rope: c.qk_rope_head_dim,
    v: c.v_head_dim,
    rank: c.kv_lora_rank,
    scale: c.derived.softmaxScale,
  };
}

/** Per-token projections of one MLA layer; the rope parts are already rotated. */
export interface MlaProjection {
  qNope: Float64Array; // [T, H, Dn]
  qPe: Float64Array; // [T, H, Dr]
  cHat: Float64Array; // [T, R]  RMSNorm_{kv_a_layernorm}(c): what the latent cache stores
  kPe: Float64Array; // [T, Dr]   shared by all heads, not normalised: the cache's other half
}

/** Queries, the normalised kv latent and the rotated k_pe of a normalised input x [T, D]; rope row t ↔ token t. */
export function mlaProject(x: Float64Array, w: AttnWeights, c: ModelConfig, rope: RopeTables): MlaProjection {
  const s = mlaShape(c);
  const eps = c.rms_norm_eps; // every norm uses rms_norm_eps (docs/model.md §12)
  const q = w.q ? linear(x, w.q) : linear(rmsNorm(linear(x, w.qA!), w.qANorm!, eps), w.qB!); // [T, H·Dq]
  const kv = linear(x, w.kvA); // [T, R + Dr]
  const T = kv.length / (s.rank + s.rope);
  const dq = s.nope + s.rope;
  const qNope = new Float64Array(T * s.heads * s.nope);
  const qPe = new Float64Array(T * s.heads * s.rope);
  const c0 = new Float64Array(T * s.rank);
  const kPe = new Float64Array(T * s.rope);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < s.heads; h++) {
      const src = (t * s.heads + h) * dq;
      qNope.set(q.subarray(src, src + s.nope), (t * s.heads + h) * s.nope);
      qPe.set(q.subarray(src + s.nope, src + dq), (t * s.heads + h) * s.rope);
      applyRope(qPe, (t * s.heads + h) * s.rope, rope, t);
    }
    const row = t * (s.rank + s.rope);
    c0.set(kv.subarray(row, row + s.rank), t * s.rank);
    kPe.set(kv.subarray(row + s.rank, row + s.rank + s.rope), t * s.rope);
    applyRope(kPe, t * s.rope, rope, t);
  }
  return { qNope, qPe, cHat: rmsNorm(c0, w.kvANorm, eps), kPe };
}

/** Naive form, step 1: per-head keys and values from the latent, u = ĉ @ kv_b_proj^T. */
export function expandKv(cHat: Float64Array, kvB: Matrix, s: MlaShape): { kNope: Float64Array; v: Float64Array } {
  const u = linear(cHat, kvB); // [S, H·(Dn+Dv)]
  const S = cHat.length / s.rank;
  const kNope = new Float64Array(S * s.heads * s.nope); // [S, H, Dn]
  const v = new Float64Array(S * s.heads * s.v); // [S, H, Dv]
  for (let j = 0; j < S * s.heads; j++) {
    const src = j * (s.nope + s.v);
    kNope.set(u.subarray(src, src + s.nope), j * s.nope);
    v.set(u.subarray(src + s.nope, src + s.nope + s.v), j * s.v);
  }
  return { kNope, v };
}

/**
 * Causal softmax over the keys for one (query, head): probs[j] ∝ exp(scale · score(j)) for kPos[j] ≤ qPos,
 * 0 for later positions (the general rule of docs/model.md §4.4: works for chunks that do not start at position 0).
 */
function causalProbs(S: number, kPos: ArrayLike<number>, qPos: number, scale: number, score: (j: number) => number): Float64Array {
  const p = new Float64Array(S);
  for (let j = 0; j < S; j++) p[j] = kPos[j]! <= qPos ? scale * score(j) : -Infinity;
  softmaxInPlace(p);
  return p;
}

function dot(a: Float32Array | Float64Array, aAt: number, b: Float64Array, bAt: number, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += a[aAt + i]! * b[bAt + i]!;
  return acc;
}

/**
 * Naive MLA attention with materialised K/V (docs/model.md §4.4):
 *   score[h,t,j] = scale · (qn[t,h]·kn[j,h] + qr[t,h]·kr[j]),  o[t,h] = Σ_j softmax_j · v[j,h]
 * qNope [T, H, Dn], qPe [T, H, Dr], kNope [S, H, Dn], kPe [S, Dr], v [S, H, Dv], qPos [T], kPos [S] → [T, H, Dv]
 */
export function attentionNaive(
  qNope: Float64Array, qPe: Float64Array, kNope: Float64Array, kPe: Float64Array, v: Float64Array,
  qPos: ArrayLike<number>, kPos: ArrayLike<number>, s: MlaShape,
): Float64Array {
  const { heads: H, nope: Dn, rope: Dr, v: Dv } = s;
  const out = new Float64Array(qPos.length * H * Dv);
  for (let t = 0; t < qPos.length; t++) {
    for (let h = 0; h < H; h++) {
      const th = t * H + h;
      const p = causalProbs(kPos.length, kPos, qPos[t]!, s.scale, (j) =>
        dot(qNope, th * Dn, kNope, (j * H + h) * Dn, Dn) + dot(qPe, th * Dr, kPe, j * Dr, Dr));
      for (let j = 0; j < kPos.length; j++) {
        for (let d = 0; d < Dv; d++) out[th * Dv + d] += p[j]! * v[(j * H + h) * Dv + d]!;
      }
    }
  }
  return out;
}

/**
 * Absorbed MLA attention over the latent cache (docs/model.md §4.5), kvB = kv_b_proj viewed as [H, Dn+Dv, R]:
 *   q̃[t,h] = W_UK[h]^T qn[t,h]  ∈ R^R,   score[h,t,j] = scale · (q̃[t,h]·ĉ[j] + qr[t,h]·kr[j])
 *   ō[t,h] = Σ_j softmax_j · ĉ[j]  ∈ R^R,  o[t,h] = W_UV[h] ō[t,h]
 * qNope [T, H, Dn], qPe [T, H, Dr], cHat [S, R], kPe [S, Dr], qPos [T], kPos [S] → [T, H, Dv]
 */
export function attentionAbsorbed(
  qNope: Float64Array, qPe: Float64Array, cHat: Float64Array, kPe: Float64Array, kvB: Matrix,
  qPos: ArrayLike<number>, kPos: ArrayLike<number>, s: MlaShape,
): Float64Array {
  const { heads: H, nope: Dn, rope: Dr, v: Dv, rank: R } = s;
  const W = kvB.data;
  const out = new Float64Array(qPos.length * H * Dv);
  const qt = new Float64Array(R); // q̃ [R]
  const ob = new Float64Array(R); // ō [R]
  for (let t = 0; t < qPos.length; t++) {
    for (let h = 0; h < H; h++) {
      const th = t * H + h;
      const uk = h * (Dn + Dv) * R; // W_UK[h] = rows h·(Dn+Dv) .. +Dn
      qt.fill(0);
      for (let d = 0; d < Dn; d++) for (let r = 0; r < R; r++) qt[r] += W[uk + d * R + r]! * qNope[th * Dn + d]!;
      const p = causalProbs(kPos.length, kPos, qPos[t]!, s.scale, (j) => dot(qt, 0, cHat, j * R, R) + dot(qPe, th * Dr, kPe, j * Dr, Dr));
      ob.fill(0);
      for (let j = 0; j < kPos.length; j++) for (let r = 0; r < R; r++) ob[r] += p[j]! * cHat[j * R + r]!;
      const uv = uk + Dn * R; // W_UV[h] = the next Dv rows
      for (let d = 0; d < Dv; d++) out[th * Dv + d] = dot(W, uv + d * R, ob, 0, R);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------------
// The latent KV cache: per layer, per token ĉ [R] (post kv_a_layernorm) and k_pe [Dr] (post RoPE).

export class LatentCache {
  readonly cHat: Float64Array[]; // per layer [S, R]
  readonly kPe: Float64Array[]; // per layer [S, Dr]
  constructor(layers: number, readonly rank: number, readonly rope: number) {
    this.cHat = Array.from({ length: layers }, () => new Float64Array(0));
    this.kPe = Array.from({ length: layers }, () => new Float64Array(0));
  }

  /** Tokens cached in `layer` (their positions are 0 .. length−1). */
  length(layer: number): number {
    return this.cHat[layer]!.length / this.rank;
  }

  append(layer: number, cHat: Float64Array, kPe: Float64Array): void {
    this.cHat[layer] = concat(this.cHat[layer]!, cHat);
    this.kPe[layer] = concat(this.kPe[layer]!, kPe);
  }
}

function concat(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export type AttentionForm = 'naive' | 'absorbed';

/**
 * One MLA block on a chunk of normalised inputs x [T, D] at positions [T] that continue the cache: projects,
 * appends ĉ and k_pe to the cache of `layer`, attends over every cached token, applies o_proj → [T, D].
 */
export function mla(
  x: Float64Array, w: AttnWeights, c: ModelConfig, cache: LatentCache, layer: number,
  positions: readonly number[], rope: RopeTables, form: AttentionForm,
): Float64Array {
  const s = mlaShape(c);
  const p = mlaProject(x, w, c, rope);
  cache.append(layer, p.cHat, p.kPe);
  const cHat = cache.cHat[layer]!;
  const kPe = cache.kPe[layer]!;
  const kPos = Array.from({ length: cache.length(layer) }, (_, j) => j);
  let o: Float64Array; // [T, H, Dv]
  if (form === 'absorbed') {
    o = attentionAbsorbed(p.qNope, p.qPe, cHat, kPe, w.kvB, positions, kPos, s);
  } else {
    const { kNope, v } = expandKv(cHat, w.kvB, s);
    o = attentionNaive(p.qNope, p.qPe, kNope, kPe, v, positions, kPos, s);
  }
  return linear(o, w.o);
}

// ------------------------------------------------------------------------------------------------------------
// MoE (docs/model.md §6)

export interface MoeOutput {
  out: Float64Array; // [T, D]
  ids: Int32Array; // [T, K]  by descending biased score
  weights: Float64Array; // [T, K]
}

/** Router logits of one token: x · gate.weight[e] for every expert // [E] */
export function routerLogits(x: Float64Array, xAt: number, gate: Matrix): Float64Array {
  const out = new Float64Array(gate.rows);
  matVec(gate, x, xAt, out, 0);
  return out;
}

/** f = Σ_{e∈Sel} w_e · FFN_e(x) + FFN_shared(x), per token. x [T, D] (post_attention_layernorm output). */
export function moe(x: Float64Array, w: MoeWeights, c: RouterConfig): MoeOutput {
  const D = w.router.cols;
  const T = x.length / D;
  const K = c.num_experts_per_tok;
  const out = w.shared ? ffn(x, w.shared) : new Float64Array(x.length);
  const ids = new Int32Array(T * K);
  const weights = new Float64Array(T * K);
  for (let t = 0; t < T; t++) {
    const route = moeRoute(routerLogits(x, t * D, w.router), w.bias, c);
    ids.set(route.ids, t * K);
    weights.set(route.weights, t * K);
    const xt = x.subarray(t * D, (t + 1) * D);
    route.ids.forEach((e, k) => {
      const y = ffn(xt, w.experts[e]!);
      for (let i = 0; i < D; i++) out[t * D + i] += route.weights[k]! * y[i]!;
    });
  }
  return { out, ids, weights };
}

// ------------------------------------------------------------------------------------------------------------
// The model

export interface ForwardOptions {
  /** Filled with the named intermediates of this call (taps.ts), shapes [T, ...]. */
  taps?: TapMap;
}

/**
 * A decoding session: the weights plus a latent KV cache. `prefill(tokens)` runs a chunk at the next positions
 * (the first chunk starts at 0) and `decode(token)` one token; both attend over everything cached so far.
 */
export class ReferenceSession {
  readonly cache: LatentCache;
  private pos = 0;

  constructor(readonly weights: CpuWeights, readonly attention: AttentionForm = 'absorbed') {
    const c = weights.config;
    this.cache = new LatentCache(c.num_hidden_layers, c.kv_lora_rank, c.qk_rope_head_dim);
  }

  /** The position the next token will take (= tokens cached). */
  get position(): number {
    return this.pos;
  }

  /** Logits of every token of the chunk // [T, V] */
  prefill(tokens: readonly number[], opts: ForwardOptions = {}): Float64Array {
    const w = this.weights;
    const c = w.config;
    const { taps } = opts;
    checkTokens(tokens, c.vocab_size);
    const T = tokens.length;
    const D = c.hidden_size;
    if (this.pos + T > c.max_position_embeddings) throw new ContextOverflowError(this.pos + T, c.max_position_embeddings);
    const positions = Array.from({ length: T }, (_, t) => this.pos + t);
    const rope = ropeTables(c, positions);
    const rows = (n: number) => [T, n];

    const h = embed(tokens, w.embed); // [T, D] residual stream
    recordTap(taps, tapNames.embed, h, rows(D));
    w.layers.forEach((lw, i) => {
      const a = mla(rmsNorm(h, lw.inputNorm, c.rms_norm_eps), lw.attn, c, this.cache, i, positions, rope, this.attention);
      recordTap(taps, tapNames.attnOut(i), a, rows(D));
      addInPlace(h, a);
      const x = rmsNorm(h, lw.postNorm, c.rms_norm_eps); // [T, D]
      let f: Float64Array;
      if (lw.moe) {
        recordTap(taps, tapNames.moeInput(i), x, rows(D));
        const m = moe(x, lw.moe, c);
        recordTap(taps, tapNames.moeTopkIdx(i), m.ids, rows(c.num_experts_per_tok));
        recordTap(taps, tapNames.moeTopkWeight(i), m.weights, rows(c.num_experts_per_tok));
        f = m.out;
      } else {
        f = ffn(x, lw.mlp!);
      }
      recordTap(taps, tapNames.ffnOut(i), f, rows(D));
      addInPlace(h, f);
      recordTap(taps, tapNames.hidden(i), h, rows(D));
    });
    const z = rmsNorm(h, w.norm, c.rms_norm_eps);
    recordTap(taps, tapNames.finalNorm, z, rows(D));
    this.pos += T;
    return linear(z, w.lmHead);
  }

  /** Logits of one token at the next position // [V] */
  decode(token: number, opts: ForwardOptions = {}): Float64Array {
    return this.prefill([token], opts);
  }
}

function addInPlace(h: Float64Array, d: Float64Array): void {
  for (let i = 0; i < h.length; i++) h[i]! += d[i]!;
}

/** The full causal forward of `tokens` from position 0 (fresh cache): logits // [T, V] */
export function referenceForward(weights: CpuWeights, tokens: readonly number[], opts: ForwardOptions & { attention?: AttentionForm } = {}): Float64Array {
  return new ReferenceSession(weights, opts.attention ?? 'naive').prefill(tokens, opts);
}
