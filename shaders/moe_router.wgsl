// moe_router.wgsl — the noaux_tc MoE router of one token per workgroup (docs/model.md §6.1-6.3, decisions §12):
//   s_e = sigmoid(logit_e);  b_e = s_e + bias_e (selection only)
//   G > 1: group score = sum of the 2 largest b_e of each group of E/G experts; keep the TG best groups,
//          b_e = -inf outside them
//   Sel = the K largest b_e, written in descending order; ties anywhere: the lower index wins
//   w_e = s_e / (norm ? Σ_Sel s : 1) · routed_scaling_factor
// Selection is by rank (rank(e) = #{e' : b_e' > b_e or (b_e' == b_e and e' < e)}; e is selected iff
// rank < K, written at ids[rank]): barrier-free, deterministic, O(E²/WG) comparisons per thread.
// GATE (override, default false): the router's gate GEMV and the post-attention RMSNorm before it run here too, so
// a decode step's routing is one dispatch instead of two (docs/kernels.md "Fused decode dispatches"):
//   xn[t, c] = nw[c] · (h[t, c] · inv_t)            inv_t: include/rms_inv.wgsl, so xn is bit-identical to rmsnorm's;
//                                                   written for the expert kernels, and kept in workgroup memory
//   logit_e = Σ_c bf16(gate[e, c]) · xn[t, c]       c ascending, one expert per thread at a time
// (docs/model.md §4.2, §6.1; the order of every sum is fixed by e, c and WG, so a token's routing does not depend on
// the other tokens of the dispatch: batch-invariant.) D ≤ MAX_D (override, workgroup memory).
//
// Bindings (group 0):
//   0  logits   array<f32>  [T, E]   router logits x · gate.weight[e] (GATE: not read, any 16 bytes)
//   1  bias     array<f32>  [E]      e_score_correction_bias
//   2  ids      array<u32>  [T, K]   written: selected experts by descending biased score
//   3  weights  array<f32>  [T, K]   written: combine weights
//   4  params   uniform     Params
//   5  h        array<f32>  [T, D]   GATE: the residual stream (the norm's input); otherwise any 16 bytes, not read
//   6  gate     array<u32>  [E, gStride]  GATE: the gate weight, BF16 codes two per word, rows of gStride words
//                                    (ops/linear.ts upload layout, padding 0); otherwise not read
//   7  nw       array<f32>  [D]      GATE: post_attention_layernorm's weight; otherwise not read
//   8  xn       array<f32>  [T, D]   GATE: written, the normalised rows (the experts' input); otherwise not written
// Workgroup: WG (override, default 64) threads, one token; dispatch T workgroups. E ≤ MAX_E (override), G ≤ 64, K ≤ 32.
// CPU counterpart: model/router.ts moeRoute; GATE: of reference.ts rmsNorm and matVec on the router weight first.

override WG: u32 = 64u;
// capacity of the per-expert workgroup arrays (≥ E); set to E rounded up by the launcher: SwiftShader's compile
// time grows with array sizes (~2.5 s for 2×512 floats), so the arrays are never larger than the model needs
override MAX_E: u32 = 64u;
override GATE: bool = false;  // the gate GEMV and its RMSNorm prologue in this kernel
override MAX_D: u32 = 64u;    // GATE: capacity of the workgroup copy of xn (≥ D, even), the launcher's D rounded up
override EPS: f32 = 1e-6;     // GATE: the norm's epsilon

const MAX_G: u32 = 64u;
const MAX_K: u32 = 32u;
const NEG: f32 = -3.0e38; // "-inf": below every b_e = s_e + bias (s_e in [0, 1], |bias| small)

struct Params {
  T: u32,        // tokens
  E: u32,        // routed experts
  K: u32,        // experts per token
  G: u32,        // groups (n_group)
  TG: u32,       // groups kept (topk_group)
  norm: u32,     // norm_topk_prob (0 / 1)
  scaling: f32,  // routed_scaling_factor
  D: u32,        // GATE: hidden size
  gStride: u32,  // GATE: u32 words per gate row
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read> h: array<f32>;
@group(0) @binding(6) var<storage, read> gate: array<u32>;
@group(0) @binding(7) var<storage, read> nw: array<f32>;
@group(0) @binding(8) var<storage, read_write> xn: array<f32>;

var<workgroup> score: array<f32, MAX_E>;  // s_e (unbiased)
var<workgroup> biased: array<f32, MAX_E>; // b_e, then masked
var<workgroup> gscore: array<f32, MAX_G>;
var<workgroup> gkeep: array<u32, MAX_G>;
var<workgroup> sel: array<u32, MAX_K>;
var<workgroup> xs: array<f32, MAX_D>;    // GATE: xn of the token (0 past D)

fn rms_src(i: u32) -> f32 { return h[i]; }
// #include "rms_inv.wgsl"

// GATE: logit_e of the token (xn in xs): two BF16 codes per word, c ascending; the high half of a row's last word
// past an odd D is padding 0 (and xs[D] is 0)
fn gateLogit(e: u32) -> f32 {
  var acc = 0.0;
  let row = e * p.gStride;
  for (var i = 0u; i < (p.D + 1u) / 2u; i++) {
    let wd = gate[row + i];
    acc += bitcast<f32>(wd << 16u) * xs[2u * i];
    acc += bitcast<f32>(wd & 0xffff0000u) * xs[2u * i + 1u];
  }
  return acc;
}

// GATE: the token's RMSNorm (include/rms_inv.wgsl: rmsnorm.wgsl's numbers) into xs and xn (every thread, with its
// barriers: uniform control flow)
fn normalise(t: u32, lid: u32) {
  let inv = rms_inv(t * p.D, p.D, EPS, lid);
  for (var c = lid; c < MAX_D; c += WG) {
    var v = 0.0;
    if (c < p.D) {
      v = nw[c] * (h[t * p.D + c] * inv);
      xn[t * p.D + c] = v;
    }
    xs[c] = v;
  }
  workgroupBarrier();
}

// a ranks before b: larger value, or equal value and lower index
fn before(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
  return va > vb || (va == vb && ia < ib);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  _ = &logits; // one binding layout with and without GATE
  _ = &h;
  _ = &gate;
  _ = &nw;
  _ = &xn;
  let t = wid.x;
  let E = p.E;
  if (GATE) { normalise(t, lid); }
  for (var e = lid; e < E; e += WG) {
    var logit: f32;
    if (GATE) { logit = gateLogit(e); } else { logit = logits[t * E + e]; }
    let s = 1.0 / (1.0 + exp(-logit));
    score[e] = s;
    biased[e] = s + bias[e];
  }
  workgroupBarrier();

  if (p.G > 1u) {
    let per = E / p.G;
    for (var g = lid; g < p.G; g += WG) {
      var m1 = NEG;
      var m2 = NEG;
      for (var e = g * per; e < (g + 1u) * per; e++) {
        let v = biased[e];
        if (v > m1) {
          m2 = m1;
          m1 = v;
        } else if (v > m2) {
          m2 = v;
        }
      }
      gscore[g] = m1 + m2;
    }
    workgroupBarrier();
    for (var g = lid; g < p.G; g += WG) {
      var rank = 0u;
      for (var o = 0u; o < p.G; o++) {
        if (before(gscore[o], o, gscore[g], g)) { rank++; }
      }
      gkeep[g] = select(0u, 1u, rank < p.TG);
    }
    workgroupBarrier();
    for (var e = lid; e < E; e += WG) {
      if (gkeep[e / per] == 0u) { biased[e] = NEG; }
    }
    workgroupBarrier();
  }

  for (var e = lid; e < E; e += WG) {
    let v = biased[e];
    var rank = 0u;
    for (var o = 0u; o < E; o++) {
      if (before(biased[o], o, v, e)) { rank++; }
    }
    if (rank < p.K) { sel[rank] = e; }
  }
  workgroupBarrier();

  if (lid == 0u) {
    var sum = 0.0;
    for (var k = 0u; k < p.K; k++) { sum += score[sel[k]]; }
    let denom = select(1.0, sum, p.norm != 0u);
    for (var k = 0u; k < p.K; k++) {
      ids[t * p.K + k] = sel[k];
      weights[t * p.K + k] = score[sel[k]] / denom * p.scaling;
    }
  }
}
