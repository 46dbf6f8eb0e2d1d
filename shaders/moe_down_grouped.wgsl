// moe_down_grouped.wgsl — grouped GEMM, second half of the experts for prefill (kernels.md §3.4-3.5):
//   y[p, d] = Dn_e[d] · h[p, :Fe]     for the pairs p of one BM-row block of expert e (moe_align.wgsl)
// h already carries the combine weight; moe_combine.wgsl sums y over the slots of each token. Tiles as in
// moe_gateup_grouped.wgsl: h rows and FP8 down rows staged (dequantised once) in workgroup memory by KC
// columns, each thread TM rows × 1 output column.
//
// Bindings (group 0):
//   0  xin       array<f32>  [T, Ks, Fmax]  h
//   1  plan      array<u32>  blockExpert [pb] then pair ids
//   2  codes     array<u32>  stack [e1-e0, D, rsF] down_proj of the shard's experts, padded rows
//   3  scales    array<f32>  stack [e1-e0, ⌈D/128⌉, scF]
//   4  shCodes   array<u32>  [D, rsFs] shared expert down_proj (any 16 bytes when Fs = 0)
//   5  shScales  array<f32>  [⌈D/128⌉, scFs]
//   6  y         array<f32>  [T, Ks, D] written (rows of this block's pairs)
//   7  params    uniform     Params
// Workgroup: 64 threads = 4 × 16; BM = 16, BN = 16, KC = 64 (8 KiB workgroup memory).
// Dispatch: indirect (blocks, ⌈D / BN⌉, 1) written by moe_align.wgsl.
// CPU counterpart: model/reference.ts moe (down_proj of each selected expert).

const BM: u32 = 16u;
const BN: u32 = 16u;
const KC: u32 = 64u;
const TM: u32 = 4u;
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
  rsF: u32,     // words per routed down row (cols = F)
  rsFs: u32,    // words per isShared down row (cols = Fs)
  Ks: u32,
  E: u32,
  pb: u32,
  scF: u32,     // ⌈F / 128⌉
  scFs: u32,    // ⌈Fs / 128⌉
}

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
@group(0) @binding(2) var<storage, read> codes: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read> shCodes: array<u32>;
@group(0) @binding(5) var<storage, read> shScales: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

var<workgroup> xs: array<f32, 1024>; // [BM, KC]
var<workgroup> ws: array<f32, 1024>; // [BN, KC] dequantised
var<workgroup> rowPair: array<u32, 16>;
var<workgroup> blockExpert: u32;

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

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wid.x;
  if (lid == 0u) { blockExpert = plan[b]; }
  let e = workgroupUniformLoad(&blockExpert);
  let isShared = e == p.E;
  if (isShared) {
    if (p.doShared == 0u) { return; }
  } else if (e < p.e0 || e >= p.e1) {
    return;
  }
  let Fe = select(p.F, p.Fs, isShared);
  let rs = select(p.rsF, p.rsFs, isShared);
  let sc = select(p.scF, p.scFs, isShared);
  let d0 = wid.y * BN;
  if (lid < BM) { rowPair[lid] = plan[p.pb + b * BM + lid]; }
  var m = 0u;
  if (!isShared) { m = e - p.e0; }
  let mw = p.D * rs;                     // words per matrix
  let ms = ((p.D + 127u) / 128u) * sc;   // scales per matrix
  let wordsPerRow = (Fe + 3u) / 4u;
  let tn = lid % BN;
  let tm = lid / BN;
  var acc: array<f32, 4>;
  for (var i = 0u; i < TM; i++) { acc[i] = 0.0; }
  workgroupBarrier();

  for (var k0 = 0u; k0 < Fe; k0 += KC) {
    for (var i = lid; i < BM * KC; i += 64u) {
      let pr = rowPair[i / KC];
      let col = k0 + i % KC;
      var v = 0.0;
      if (pr != SENTINEL && col < Fe) { v = xin[pr * p.Fmax + col]; }
      xs[i] = v;
    }
    for (var i = lid; i < BN * (KC / 4u); i += 64u) {
      let r = i / (KC / 4u);
      let wi = i % (KC / 4u);
      let d = d0 + r;
      let cw = k0 / 4u + wi;
      var v = vec4<f32>(0.0);
      if (d < p.D && cw < wordsPerRow) {
        let si = (d / 128u) * sc + (cw * 4u) / 128u;
        let o = d * rs + cw;
        if (isShared) {
          v = fp8x4(shCodes[o]) * shScales[si];
        } else {
          v = fp8x4(codes[m * mw + o]) * scales[m * ms + si];
        }
      }
      let so = r * KC + wi * 4u;
      ws[so] = v.x; ws[so + 1u] = v.y; ws[so + 2u] = v.z; ws[so + 3u] = v.w;
    }
    workgroupBarrier();
    for (var c = 0u; c < KC; c++) {
      let w = ws[tn * KC + c];
      for (var i = 0u; i < TM; i++) { acc[i] += xs[(tm * TM + i) * KC + c] * w; }
    }
    workgroupBarrier();
  }

  let d = d0 + tn;
  if (d < p.D) {
    for (var i = 0u; i < TM; i++) {
      let pr = rowPair[tm * TM + i];
      if (pr != SENTINEL) { y[pr * p.D + d] = acc[i]; }
    }
  }
}
