// bf16_gemm.wgsl — BF16 matrix-matrix product for prefill (T tokens): lm_head over many positions, and linear
// weights of BF16 checkpoints:
//   y[yOffset + t·yStride + rowStart + r] (+)= Σ_c bf16(W[r, c]) · x[xOffset + t·xStride + c]
// One thread owns one row and a tile of TT tokens (the widened weight pair is reused from registers).
//
// Bindings (group 0):
//   0  w       array<u32>  [rows, stride]            BF16 codes of one row chunk, 2 per word
//   1  x       array<f32>  [T, xStride] at xOffset
//   2  y       array<f32>  [T, yStride] at yOffset
//   3  params  uniform     Params
// Workgroup: WG threads (override, default 64) along rows, no barriers. Dispatch: (⌈rows / WG⌉, ⌈T / TT⌉).
// CPU counterpart: src/model/reference.ts linear on bf16ArrayToF32(W).

override WG: u32 = 64u;
const TT: u32 = 8u;

struct Params {
  rows: u32,
  cols: u32,
  stride: u32,     // words per weight row (>= ⌈cols / 2⌉)
  rowStart: u32,
  xOffset: u32,
  yOffset: u32,
  accumulate: u32,
  T: u32,
  xStride: u32,
  yStride: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

fn decode2(q: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(q << 16u), bitcast<f32>(q & 0xFFFF0000u));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  let t0 = gid.y * TT;
  if (r >= params.rows || t0 >= params.T) {
    return;
  }
  var xo: array<u32, TT>;
  for (var j = 0u; j < TT; j++) {
    xo[j] = params.xOffset + min(t0 + j, params.T - 1u) * params.xStride;
  }
  let base = r * params.stride;
  let full = params.cols / 2u;
  var acc = array<f32, TT>();
  for (var k = 0u; k < full; k++) {
    let wv = decode2(w[base + k]);
    for (var j = 0u; j < TT; j++) {
      let c = xo[j] + 2u * k;
      acc[j] += dot(wv, vec2<f32>(x[c], x[c + 1u]));
    }
  }
  if ((params.cols & 1u) != 0u) {
    let wl = decode2(w[base + full]).x;
    for (var j = 0u; j < TT; j++) {
      acc[j] += wl * x[xo[j] + params.cols - 1u];
    }
  }
  let nt = min(TT, params.T - t0);
  for (var j = 0u; j < nt; j++) {
    let o = params.yOffset + (t0 + j) * params.yStride + params.rowStart + r;
    if (params.accumulate != 0u) {
      y[o] += acc[j];
    } else {
      y[o] = acc[j];
    }
  }
}
