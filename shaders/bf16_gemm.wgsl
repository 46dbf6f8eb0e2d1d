// bf16_gemm.wgsl — BF16 matrix-matrix product for prefill (T tokens): lm_head over many positions, and linear
// weights of BF16 checkpoints:
//   y[yOffset + t·yStride + rowStart + r] (+)= Σ_c bf16(W[r, c]) · x[xOffset + t·xStride + c]
// One thread owns one row and a tile of 4 tokens (the widened weight pair is reused from registers).
//
// Bindings (group 0):
//   0  w       array<u32>  [rows, stride]            BF16 codes of one row chunk, 2 per word
//   1  x       array<f32>  [T, xStride] at xOffset
//   2  y       array<f32>  [T, yStride] at yOffset
//   3  params  uniform     Params
// Workgroup: WG threads (override, default 64) along rows, no barriers. Dispatch: (⌈rows / WG⌉, ⌈T / 4⌉).
// CPU counterpart: src/model/reference.ts linear on bf16ArrayToF32(W).

override WG: u32 = 64u;
const TT: u32 = 4u; // tokens per thread (vec4 accumulators, see fp8_gemm.wgsl)

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

fn x2(at: u32) -> vec2<f32> {
  return vec2<f32>(x[at], x[at + 1u]);
}

fn store(t: u32, r: u32, v: f32) {
  let o = params.yOffset + t * params.yStride + params.rowStart + r;
  if (params.accumulate != 0u) {
    y[o] += v;
  } else {
    y[o] = v;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  let t0 = gid.y * TT;
  if (r >= params.rows || t0 >= params.T) {
    return;
  }
  let last = params.T - 1u;
  let o0 = params.xOffset + t0 * params.xStride;
  let o1 = params.xOffset + min(t0 + 1u, last) * params.xStride;
  let o2 = params.xOffset + min(t0 + 2u, last) * params.xStride;
  let o3 = params.xOffset + min(t0 + 3u, last) * params.xStride;
  let base = r * params.stride;
  let full = params.cols / 2u;
  var acc = vec4<f32>(0.0);
  for (var k = 0u; k < full; k++) {
    let wv = decode2(w[base + k]);
    let c = 2u * k;
    acc += vec4<f32>(dot(wv, x2(o0 + c)), dot(wv, x2(o1 + c)), dot(wv, x2(o2 + c)), dot(wv, x2(o3 + c)));
  }
  if ((params.cols & 1u) != 0u) {
    let wl = decode2(w[base + full]).x;
    let c = params.cols - 1u;
    acc += wl * vec4<f32>(x[o0 + c], x[o1 + c], x[o2 + c], x[o3 + c]);
  }
  let nt = min(TT, params.T - t0);
  store(t0, r, acc.x);
  if (nt > 1u) { store(t0 + 1u, r, acc.y); }
  if (nt > 2u) { store(t0 + 2u, r, acc.z); }
  if (nt > 3u) { store(t0 + 3u, r, acc.w); }
}
