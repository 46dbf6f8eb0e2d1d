// moe_down_grouped_bf16.wgsl — BF16 twin of moe_down_grouped.wgsl (checkpoints without quantization_config):
// grouped GEMM, second half of the experts for prefill:
//   y[p, d] = Dn_e[d] · h[p, :Fe]     for the BM pairs p of one block of expert e (moe_align.wgsl)
// h already carries the combine weight; moe_combine.wgsl sums y over the slots of each token. Thread = one
// output row d × the block's pairs, 4 at a time (then the 0-3 left one at a time): each 4-column group (two
// u32 words of 2 BF16 codes, widened exactly; no scales) is decoded once and used for 4 pairs from registers;
// no workgroup memory, no barriers (as the FP8 kernel).
//
// Bindings (group 0):
//   0  xin       array<f32>  [T, Ks, Fmax]  h
//   1  plan      array<u32>  blockExpert [pb] then BM pair ids per block
//   2  codes     array<u32>  stack [e1-e0, D, rsF] down_proj of the shard's experts, BF16 padded rows
//   3  shCodes   array<u32>  [D, rsFs] shared expert down_proj (any 16 bytes when Fs = 0)
//   4  y         array<f32>  [T, Ks, D] written (rows of this block's pairs)
//   5  params    uniform     Params (the FP8 kernel's, scF / scFs unused)
// Workgroup: WG = 64 threads (one row each), BM = 16 pairs. Dispatch: indirect (blocks, ⌈D / 64⌉, 1)
// written by moe_align.wgsl.
// CPU counterpart: model/reference.ts moe (down_proj of each selected expert).

const WG: u32 = 64u;
const BM: u32 = 16u;
const SENTINEL: u32 = 0xFFFFFFFFu;

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
  rsF: u32,       // words per routed down row (cols = F)
  rsFs: u32,      // words per shared down row (cols = Fs)
  Ks: u32,
  E: u32,
  pb: u32,
  _unused0: u32,  // scF of the FP8 kernel
  _unused1: u32,  // scFs of the FP8 kernel
}

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
@group(0) @binding(2) var<storage, read> codes: array<u32>;
@group(0) @binding(3) var<storage, read> shCodes: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// four BF16 codes (two words, low half first) -> f32, exact
// #include "bf16x4.wgsl"

// xin[o + c .. o + c + 3] with lanes at or past n read as 0 (never past the row)
fn x4(o: u32, c: u32, n: u32) -> vec4<f32> {
  if (c + 4u <= n) { return vec4<f32>(xin[o + c], xin[o + c + 1u], xin[o + c + 2u], xin[o + c + 3u]); }
  let last = o + n - 1u;
  return vec4<f32>(xin[o + c], select(0.0, xin[min(o + c + 1u, last)], c + 1u < n),
                   select(0.0, xin[min(o + c + 2u, last)], c + 2u < n), 0.0);
}

// dots of one weight row with 4 (or 1) h rows at offsets o; the buffer choice stays outside the group loop
fn rows4_routed(row: u32, o: vec4<u32>, n: u32) -> vec4<f32> {
  var acc = vec4<f32>(0.0);
  for (var gi = 0u; gi < (n + 3u) / 4u; gi++) {
    let w4 = bf16x4(codes[row + 2u * gi], codes[row + 2u * gi + 1u]);
    let c = gi * 4u;
    acc += vec4<f32>(dot(w4, x4(o.x, c, n)), dot(w4, x4(o.y, c, n)), dot(w4, x4(o.z, c, n)), dot(w4, x4(o.w, c, n)));
  }
  return acc;
}

fn rows4_shared(row: u32, o: vec4<u32>, n: u32) -> vec4<f32> {
  var acc = vec4<f32>(0.0);
  for (var gi = 0u; gi < (n + 3u) / 4u; gi++) {
    let w4 = bf16x4(shCodes[row + 2u * gi], shCodes[row + 2u * gi + 1u]);
    let c = gi * 4u;
    acc += vec4<f32>(dot(w4, x4(o.x, c, n)), dot(w4, x4(o.y, c, n)), dot(w4, x4(o.z, c, n)), dot(w4, x4(o.w, c, n)));
  }
  return acc;
}

fn row1_routed(row: u32, o: u32, n: u32) -> f32 {
  var acc = 0.0;
  for (var gi = 0u; gi < (n + 3u) / 4u; gi++) {
    acc += dot(bf16x4(codes[row + 2u * gi], codes[row + 2u * gi + 1u]), x4(o, gi * 4u, n));
  }
  return acc;
}

fn row1_shared(row: u32, o: u32, n: u32) -> f32 {
  var acc = 0.0;
  for (var gi = 0u; gi < (n + 3u) / 4u; gi++) {
    acc += dot(bf16x4(shCodes[row + 2u * gi], shCodes[row + 2u * gi + 1u]), x4(o, gi * 4u, n));
  }
  return acc;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wid.x;
  let e = plan[b];
  let isShared = e == p.E;
  if (isShared) {
    if (p.doShared == 0u) { return; }
  } else if (e < p.e0 || e >= p.e1) {
    return;
  }
  let d = wid.y * WG + lid;
  if (d >= p.D) { return; }
  let Fe = select(p.F, p.Fs, isShared);
  let rs = select(p.rsF, p.rsFs, isShared);

  // valid pairs are a prefix of the block (see moe_gateup_grouped.wgsl)
  let pb = p.pb + b * BM;
  var n = 0u;
  for (var i = 0u; i < BM; i++) { if (plan[pb + i] != SENTINEL) { n = i + 1u; } }
  var m = 0u;
  if (!isShared) { m = e - p.e0; }
  let row = m * p.D * rs + d * rs; // matrix m, row d

  // full groups of 4 pairs, then the remaining 0-3 one at a time (no work on padding rows)
  var i0 = 0u;
  for (; i0 + 4u <= n; i0 += 4u) {
    let o = vec4<u32>(plan[pb + i0], plan[pb + i0 + 1u], plan[pb + i0 + 2u], plan[pb + i0 + 3u]) * p.Fmax;
    var acc: vec4<f32>;
    if (isShared) { acc = rows4_shared(row, o, Fe); } else { acc = rows4_routed(row, o, Fe); }
    for (var j = 0u; j < 4u; j++) { y[plan[pb + i0 + j] * p.D + d] = acc[j]; }
  }
  for (; i0 < n; i0++) {
    let pr = plan[pb + i0];
    var acc: f32;
    if (isShared) { acc = row1_shared(row, pr * p.Fmax, Fe); } else { acc = row1_routed(row, pr * p.Fmax, Fe); }
    y[pr * p.D + d] = acc;
  }
}
