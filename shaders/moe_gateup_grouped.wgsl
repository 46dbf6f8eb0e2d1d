// moe_gateup_grouped.wgsl — grouped GEMM, first half of the experts for prefill (kernels.md §3.4-3.5):
// every workgroup owns one block of BM (token, slot) pairs that all use the same expert (moe_align.wgsl) and
// WG of that expert's rows, so the expert's gate/up rows are read once per block instead of once per token:
//   h[p, f] = w_p · silu(G_e[f] · x_t) · (U_e[f] · x_t),  p = t·Ks + k (w = 1 for the shared slot k = K)
// Thread = one row f × the block's pairs, 4 at a time: each u32 word of 4 FP8 codes is decoded (× its block
// scale: the exact f32 weight of the reference) and used for 4 tokens from registers; the x reads are the
// same address for every thread (broadcast). No workgroup memory and no barriers: the shape that runs well
// on CPU adapters (kernels.md §3.4, as fp8_gemm.wgsl).
//
// Bindings (group 0):
//   0  xin       array<f32>  [T, D]
//   1  plan      array<u32>  blockExpert [pb] then BM pair ids per block (moe_align.wgsl)
//   2  wts       array<f32>  [T, K] combine weights
//   3  codes     array<u32>  stack [2·(e1-e0), F, rsD] gate_e, up_e of the shard's experts, padded rows
//   4  scales    array<f32>  stack [2·(e1-e0), ⌈F/128⌉, scD]
//   5  shCodes   array<u32>  stack [2, Fs, rsD] shared expert (any 16 bytes when Fs = 0)
//   6  shScales  array<f32>  stack [2, ⌈Fs/128⌉, scD]
//   7  h         array<f32>  [T, Ks, Fmax] written (rows of this block's pairs)
//   8  params    uniform     Params
// Workgroup: WG = 64 threads (one row each), BM = 16 pairs. Dispatch: indirect (blocks, ⌈Fmax / 64⌉, 1)
// written by moe_align.wgsl; blocks of experts outside the shard [e0, e1) (or the shared expert when
// doShared = 0) and rows past the expert's width exit at once.
// CPU counterpart: model/reference.ts moe (silu(gate·x) ⊙ up·x, × the combine weight).

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
  rsD: u32,
  scD: u32,
  Ks: u32,
  E: u32,         // the shared expert's id in plan
  pb: u32,        // offset of the pair ids in plan
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
@group(0) @binding(2) var<storage, read> wts: array<f32>;
@group(0) @binding(3) var<storage, read> codes: array<u32>;
@group(0) @binding(4) var<storage, read> scales: array<f32>;
@group(0) @binding(5) var<storage, read> shCodes: array<u32>;
@group(0) @binding(6) var<storage, read> shScales: array<f32>;
@group(0) @binding(7) var<storage, read_write> h: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

// four E4M3FN codes of a word -> f32 (kernels.md §3.1 (A), exact incl. subnormals; NaN codes give ±480)
fn fp8x4(word: u32) -> vec4<f32> {
  let b = vec4<u32>(word & 0xFFu, (word >> 8u) & 0xFFu, (word >> 16u) & 0xFFu, word >> 24u);
  let s = (b & vec4<u32>(0x80u)) << vec4<u32>(24u);
  let e = (b >> vec4<u32>(3u)) & vec4<u32>(0xFu);
  let m = b & vec4<u32>(7u);
  let normal = bitcast<vec4<f32>>(s | ((e + vec4<u32>(120u)) << vec4<u32>(23u)) | (m << vec4<u32>(20u)));
  let sub = bitcast<vec4<f32>>(s | bitcast<vec4<u32>>(vec4<f32>(m) * 0.001953125));
  return select(normal, sub, e == vec4<u32>(0u));
}

// xin[o + c .. o + c + 3] with lanes at or past D read as 0 (never past the row)
fn x4(o: u32, c: u32) -> vec4<f32> {
  if (c + 4u <= p.D) { return vec4<f32>(xin[o + c], xin[o + c + 1u], xin[o + c + 2u], xin[o + c + 3u]); }
  let last = o + p.D - 1u;
  return vec4<f32>(xin[o + c], select(0.0, xin[min(o + c + 1u, last)], c + 1u < p.D),
                   select(0.0, xin[min(o + c + 2u, last)], c + 2u < p.D), 0.0);
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
  let Fe = select(p.F, p.Fs, isShared);
  let f = wid.y * WG + lid;
  if (f >= Fe) { return; }

  // the block's valid pairs are a prefix of its BM rows (moe_align scatters each expert's pairs from the start
  // of its segment); rows are processed 4 at a time so a sparse block (Kimi K2 prefill: ~5 tokens per expert
  // per 256-token chunk) does not pay for 16
  let pb = p.pb + b * BM;
  var n = 0u;
  for (var i = 0u; i < BM; i++) { if (plan[pb + i] != SENTINEL) { n = i + 1u; } }
  let mw = Fe * p.rsD;                   // words per matrix
  let ms = ((Fe + 127u) / 128u) * p.scD; // scales per matrix
  var m = 0u;
  if (!isShared) { m = 2u * (e - p.e0); }
  let gRow = m * mw + f * p.rsD;
  let uRow = gRow + mw;
  let gS = m * ms + (f / 128u) * p.scD;
  let uS = gS + ms;
  let words = (p.D + 3u) / 4u;

  for (var i0 = 0u; i0 < n; i0 += 4u) {
    // x rows of pairs i0 .. i0+3 (past n: a copy of row i0, never written)
    let p0 = plan[pb + i0];
    let p1 = plan[pb + min(i0 + 1u, n - 1u)];
    let p2 = plan[pb + min(i0 + 2u, n - 1u)];
    let p3 = plan[pb + min(i0 + 3u, n - 1u)];
    let o0 = (p0 / p.Ks) * p.D;
    let o1 = (p1 / p.Ks) * p.D;
    let o2 = (p2 / p.Ks) * p.D;
    let o3 = (p3 / p.Ks) * p.D;
    var ag = vec4<f32>(0.0);
    var au = vec4<f32>(0.0);
    for (var wi = 0u; wi < words; wi++) {
      var g4: vec4<f32>;
      var u4: vec4<f32>;
      if (isShared) {
        g4 = fp8x4(shCodes[gRow + wi]) * shScales[gS + wi / 32u];
        u4 = fp8x4(shCodes[uRow + wi]) * shScales[uS + wi / 32u];
      } else {
        g4 = fp8x4(codes[gRow + wi]) * scales[gS + wi / 32u];
        u4 = fp8x4(codes[uRow + wi]) * scales[uS + wi / 32u];
      }
      let c = wi * 4u;
      let x0 = x4(o0, c);
      let x1 = x4(o1, c);
      let x2 = x4(o2, c);
      let x3 = x4(o3, c);
      ag += vec4<f32>(dot(g4, x0), dot(g4, x1), dot(g4, x2), dot(g4, x3));
      au += vec4<f32>(dot(u4, x0), dot(u4, x1), dot(u4, x2), dot(u4, x3));
    }
    for (var j = 0u; j < 4u; j++) {
      if (i0 + j < n) {
        let pr = plan[pb + i0 + j];
        let t = pr / p.Ks;
        let k = pr % p.Ks;
        var wt = 1.0;
        if (k < p.K) { wt = wts[t * p.K + k]; }
        let g = ag[j];
        h[pr * p.Fmax + f] = wt * (g / (1.0 + exp(-g))) * au[j];
      }
    }
  }
}
