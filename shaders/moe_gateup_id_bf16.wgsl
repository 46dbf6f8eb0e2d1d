// moe_gateup_id_bf16.wgsl — BF16 twin of moe_gateup_id.wgsl (checkpoints without quantization_config): the
// first half of the routed experts for decode / small T, expert ids read on the GPU (no CPU readback),
// SwiGLU fused (model-spec §6.4):
//   slot k < K:  e = ids[t, k];  h[t, k, f] = w[t, k] · silu(G_e[f] · x_t) · (U_e[f] · x_t)    f < F
//   slot K:      the shared expert (weight 1), f < Fs
// G_e / U_e = gate_proj / up_proj of expert e: BF16 [F, D], read 4 columns (two u32 words of 2 codes) at a
// time and widened exactly in registers (f32 bits = bf16 << 16); no scales. The ragged last group of a row is
// masked on the x side (padding halves are 0). Experts outside this dispatch's shard [e0, e1) are skipped.
//
// Bindings (group 0):
//   0  xin       array<f32>  [T, D]                 post_attention_layernorm output
//   1  ids       array<u32>  [T, K]                 selected experts (moe_router.wgsl)
//   2  wts       array<f32>  [T, K]                 their combine weights
//   3  codes     array<u32>  stack [2·(e1-e0), F, rsD] gate_e, up_e of the shard's experts, BF16 padded rows
//   4  shCodes   array<u32>  stack [2, Fs, rsD]     shared expert gate, up (any 16 bytes when Fs = 0)
//   5  h         array<f32>  [T, Ks, Fmax]          written
//   6  params    uniform     Params (the FP8 kernel's, scD unused)
// Workgroup: WG threads (override, default 64), one output row f each, no barriers (kernels.md §3.4).
// Dispatch: (⌈Fmax / WG⌉, K or Ks slots, T).
// CPU counterpart: model/reference.ts moe (silu(gate·x) ⊙ up·x per selected expert, × its weight).

override WG: u32 = 64u;

struct Params {
  T: u32,
  D: u32,         // hidden
  K: u32,         // routed slots per token
  F: u32,         // routed expert width
  Fs: u32,        // shared expert width (0: none)
  Fmax: u32,      // row stride of h
  e0: u32,        // first expert of this shard
  e1: u32,        // one past its last
  doShared: u32,  // 1: this dispatch computes slot K
  rsD: u32,       // words per weight row (cols = D)
  _unused: u32,   // scD of the FP8 kernel
  Ks: u32,        // slots per token in h
}

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> wts: array<f32>;
@group(0) @binding(3) var<storage, read> codes: array<u32>;
@group(0) @binding(4) var<storage, read> shCodes: array<u32>;
@group(0) @binding(5) var<storage, read_write> h: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

// four BF16 codes (two words, low half first) -> f32, exact
// #include "bf16x4.wgsl"

// xin[xo + c .. xo + c + 3], lanes at or past n read as 0 (never past the row)
fn x4(xo: u32, c: u32, n: u32) -> vec4<f32> {
  if (c + 4u <= n) { return vec4<f32>(xin[xo + c], xin[xo + c + 1u], xin[xo + c + 2u], xin[xo + c + 3u]); }
  let last = xo + n - 1u;
  return vec4<f32>(xin[xo + c], select(0.0, xin[min(xo + c + 1u, last)], c + 1u < n),
                   select(0.0, xin[min(xo + c + 2u, last)], c + 2u < n), 0.0);
}

// Σ_c W[row, c] · xin[xo + c] for the row starting at word `base`
fn dot_routed(base: u32, xo: u32, cols: u32) -> f32 {
  let groups = (cols + 3u) / 4u;
  var part = vec4<f32>(0.0);
  for (var g = 0u; g < groups; g++) { part += bf16x4(codes[base + 2u * g], codes[base + 2u * g + 1u]) * x4(xo, g * 4u, cols); }
  return dot(part, vec4<f32>(1.0));
}

fn dot_shared(base: u32, xo: u32, cols: u32) -> f32 {
  let groups = (cols + 3u) / 4u;
  var part = vec4<f32>(0.0);
  for (var g = 0u; g < groups; g++) { part += bf16x4(shCodes[base + 2u * g], shCodes[base + 2u * g + 1u]) * x4(xo, g * 4u, cols); }
  return dot(part, vec4<f32>(1.0));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let f = gid.x;
  let k = wid.y;
  let t = wid.z;
  let xo = t * p.D;
  var g = 0.0;
  var u = 0.0;
  var wt = 1.0;
  if (k < p.K) {
    let e = ids[t * p.K + k];
    if (e < p.e0 || e >= p.e1 || f >= p.F) { return; }
    wt = wts[t * p.K + k];
    let mw = p.F * p.rsD;    // words per matrix
    let m = 2u * (e - p.e0); // gate matrix; up is m + 1
    g = dot_routed(m * mw + f * p.rsD, xo, p.D);
    u = dot_routed((m + 1u) * mw + f * p.rsD, xo, p.D);
  } else {
    if (p.doShared == 0u || f >= p.Fs) { return; }
    let mw = p.Fs * p.rsD;
    g = dot_shared(f * p.rsD, xo, p.D);
    u = dot_shared(mw + f * p.rsD, xo, p.D);
  }
  h[(t * p.Ks + k) * p.Fmax + f] = wt * (g / (1.0 + exp(-g))) * u;
}
