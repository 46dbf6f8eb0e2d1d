// moe_down_id_bf16.wgsl — BF16 twin of moe_down_id.wgsl (checkpoints without quantization_config): the second
// half of the experts for decode / small T, with the weighted combine and the residual add fused (spec §6.5):
//   out[t, d] = (accumulate ? out[t, d] : 0) + Σ_{k < K, ids[t,k] in shard} Dn_e[d] · h[t, k, :F]
//                                            + (doShared ? DnS[d] · h[t, K, :Fs] : 0)
// h already carries the combine weight (moe_gateup_id_bf16.wgsl); Dn_e = down_proj of expert e, BF16 [D, F],
// read 4 columns (two u32 words) at a time, widened exactly in registers; ragged last group masked on the h
// side. Every output row is owned by one thread, which loops over the slots in a fixed order: deterministic,
// no atomics. Later shards run with accumulate = 1.
//
// Bindings (group 0):
//   0  xin       array<f32>  [T, Ks, Fmax]          h
//   1  ids       array<u32>  [T, K]
//   2  codes     array<u32>  stack [e1-e0, D, rsF]  down_proj of the shard's experts, BF16 padded rows
//   3  shCodes   array<u32>  [D, rsFs]              shared expert down_proj (any 16 bytes when Fs = 0)
//   4  out       array<f32>  [T, D]                 read (accumulate) and written
//   5  params    uniform     Params (the FP8 kernel's, scF / scFs unused)
// Workgroup: WG threads (override, default 64), one output row d each, no barriers. Dispatch: (⌈D / WG⌉, T).
// CPU counterpart: model/reference.ts moe (Σ_k w_k · down_e(…) + shared).

override WG: u32 = 64u;

struct Params {
  T: u32,
  D: u32,
  K: u32,
  F: u32,
  Fs: u32,
  Fmax: u32,
  e0: u32,
  e1: u32,
  doShared: u32,
  accumulate: u32,
  rsF: u32,       // words per routed down row (cols = F)
  rsFs: u32,      // words per shared down row (cols = Fs)
  Ks: u32,
  _unused0: u32,  // scF of the FP8 kernel
  _unused1: u32,  // scFs of the FP8 kernel
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> codes: array<u32>;
@group(0) @binding(3) var<storage, read> shCodes: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// four BF16 codes (two words, low half first) -> f32, exact
// #include "bf16x4.wgsl"

// xin[xo + c .. xo + c + 3], lanes at or past n read as 0 (never past the row)
fn x4(xo: u32, c: u32, n: u32) -> vec4<f32> {
  if (c + 4u <= n) { return vec4<f32>(xin[xo + c], xin[xo + c + 1u], xin[xo + c + 2u], xin[xo + c + 3u]); }
  let last = xo + n - 1u;
  return vec4<f32>(xin[xo + c], select(0.0, xin[min(xo + c + 1u, last)], c + 1u < n),
                   select(0.0, xin[min(xo + c + 2u, last)], c + 2u < n), 0.0);
}

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
  let d = gid.x;
  let t = wid.y;
  if (d >= p.D) { return; }
  var acc = 0.0;
  if (p.accumulate != 0u) { acc = out[t * p.D + d]; }
  let mw = p.D * p.rsF; // words per expert matrix
  for (var k = 0u; k < p.K; k++) {
    let e = ids[t * p.K + k];
    if (e >= p.e0 && e < p.e1) {
      acc += dot_routed((e - p.e0) * mw + d * p.rsF, (t * p.Ks + k) * p.Fmax, p.F);
    }
  }
  if (p.doShared != 0u) {
    acc += dot_shared(d * p.rsFs, (t * p.Ks + p.K) * p.Fmax, p.Fs);
  }
  out[t * p.D + d] = acc;
}
