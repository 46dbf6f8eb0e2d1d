// moe_gateup_grouped.wgsl — grouped GEMM, first half of the experts for prefill (kernels.md §3.4-3.5):
// every workgroup owns one BM-row block of pairs that all use the same expert (moe_align.wgsl) and BN output
// columns, so each expert's gate/up rows are read once per block instead of once per token:
//   h[p, f] = w_p · silu(G_e[f] · x_t) · (U_e[f] · x_t),  p = t·Ks + k (w = 1 for the shared slot k = K)
// K-loop in chunks of KC columns: the x rows of the block and the FP8 weight rows are staged in workgroup
// memory, the weights dequantised ONCE there (code · block scale, the exact f32 of the reference) and read
// by all BM rows; each thread accumulates TM rows × 1 column for gate and up.
//
// Bindings (group 0):
//   0  xin       array<f32>  [T, D]
//   1  plan      array<u32>  blockExpert [pb] then pair ids (moe_align.wgsl)
//   2  wts       array<f32>  [T, K] combine weights
//   3  codes     array<u32>  stack [2·(e1-e0), F, rsD] gate_e, up_e of the shard's experts, padded rows
//   4  scales    array<f32>  stack [2·(e1-e0), ⌈F/128⌉, scD]
//   5  shCodes   array<u32>  stack [2, Fs, rsD] shared expert (any 16 bytes when Fs = 0)
//   6  shScales  array<f32>  stack [2, ⌈Fs/128⌉, scD]
//   7  h         array<f32>  [T, Ks, Fmax] written (rows of this block's pairs)
//   8  params    uniform     Params
// Workgroup: 64 threads = (BM/TM = 4) × (BN = 16); BM = 16, BN = 16, KC = 64 (12 KiB workgroup memory).
// Dispatch: indirect (blocks, ⌈Fmax / BN⌉, 1) written by moe_align.wgsl; blocks of experts outside the shard
// [e0, e1) (or the shared expert when doShared = 0) and columns past the expert's width exit at once.
// CPU counterpart: model/reference.ts moe (silu(gate·x) ⊙ up·x, × the combine weight).

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

var<workgroup> xs: array<f32, 1024>; // [BM, KC]
var<workgroup> ws: array<f32, 1024>; // [BN, KC] gate, dequantised
var<workgroup> us: array<f32, 1024>; // [BN, KC] up, dequantised
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
  let f0 = wid.y * BN;
  if (f0 >= Fe) { return; }
  if (lid < BM) { rowPair[lid] = plan[p.pb + b * BM + lid]; }

  let mw = Fe * p.rsD;                   // words per matrix
  let ms = ((Fe + 127u) / 128u) * p.scD; // scales per matrix
  var m = 0u;
  if (!isShared) { m = 2u * (e - p.e0); }
  let wordsPerRow = (p.D + 3u) / 4u;
  let tn = lid % BN;
  let tm = lid / BN;
  var ag: array<f32, 4>;
  var au: array<f32, 4>;
  for (var i = 0u; i < TM; i++) { ag[i] = 0.0; au[i] = 0.0; }
  workgroupBarrier();

  for (var k0 = 0u; k0 < p.D; k0 += KC) {
    for (var i = lid; i < BM * KC; i += 64u) {
      let pr = rowPair[i / KC];
      let col = k0 + i % KC;
      var v = 0.0;
      if (pr != SENTINEL && col < p.D) { v = xin[(pr / p.Ks) * p.D + col]; }
      xs[i] = v;
    }
    for (var i = lid; i < BN * (KC / 4u); i += 64u) {
      let r = i / (KC / 4u);
      let wi = i % (KC / 4u);
      let f = f0 + r;
      let cw = k0 / 4u + wi;
      var vg = vec4<f32>(0.0);
      var vu = vec4<f32>(0.0);
      if (f < Fe && cw < wordsPerRow) {
        let sc = (f / 128u) * p.scD + (cw * 4u) / 128u;
        let o = f * p.rsD + cw;
        if (isShared) {
          vg = fp8x4(shCodes[o]) * shScales[sc];
          vu = fp8x4(shCodes[mw + o]) * shScales[ms + sc];
        } else {
          vg = fp8x4(codes[m * mw + o]) * scales[m * ms + sc];
          vu = fp8x4(codes[(m + 1u) * mw + o]) * scales[(m + 1u) * ms + sc];
        }
      }
      let so = r * KC + wi * 4u;
      ws[so] = vg.x; ws[so + 1u] = vg.y; ws[so + 2u] = vg.z; ws[so + 3u] = vg.w;
      us[so] = vu.x; us[so + 1u] = vu.y; us[so + 2u] = vu.z; us[so + 3u] = vu.w;
    }
    workgroupBarrier();
    for (var c = 0u; c < KC; c++) {
      let g = ws[tn * KC + c];
      let u = us[tn * KC + c];
      for (var i = 0u; i < TM; i++) {
        let xv = xs[(tm * TM + i) * KC + c];
        ag[i] += xv * g;
        au[i] += xv * u;
      }
    }
    workgroupBarrier();
  }

  let f = f0 + tn;
  if (f < Fe) {
    for (var i = 0u; i < TM; i++) {
      let pr = rowPair[tm * TM + i];
      if (pr != SENTINEL) {
        let t = pr / p.Ks;
        let k = pr % p.Ks;
        var wt = 1.0;
        if (k < p.K) { wt = wts[t * p.K + k]; }
        let g = ag[i];
        h[pr * p.Fmax + f] = wt * (g / (1.0 + exp(-g))) * au[i];
      }
    }
  }
}
