// fp8_gemm_f16.wgsl — block-FP8 matrix-matrix product for prefill (T tokens), `shader-f16` variant
// (opt-in --precision f16): the products of fp8_gemm.wgsl formed in f16.
//   y[yOffset + t·yStride + rowStart + r] (+)= Σ_c e4m3(W[r, c]) · scale[(rowStart + r) / 128, c / 128]
//                                                 · x[xOffset + t·xStride + c]
// Decoding as fp8_gemv_f16.wgsl (exact E4M3 → f16 / 256 with integer ops and bitcast<vec2<f16>>); x rounded to
// f16; each 4-term dot in f16, accumulated in f32 per 128-column block, scaled by scale · 256. One row × 4
// tokens per thread as fp8_gemm.wgsl.
// Error vs the f32 path: ~1e-3 of Σ|w·x| (x rounding 2^-11 relative plus f16 partial dots).
//
// Bindings (group 0): as fp8_gemm.wgsl
//   0  w array<u32> [rows, stride]   1  scale array<f32> [⌈R/128⌉, scaleCols]   2  x array<f32> [T, xStride]
//   3  y array<f32> [T, yStride]     4  params uniform Params
// Workgroup: WG threads (override, default 64) along rows, TT = 4 tokens per thread, no barriers.
// Dispatch: (⌈rows / WG⌉, ⌈T / 4⌉).
// CPU counterpart: src/model/reference.ts linear on dequantizeFp8Block(W) (with the tolerance above).
enable f16;

override WG: u32 = 64u;
const TT: u32 = 4u; // tokens per thread

struct Params {
  rows: u32,       // rows of this chunk
  cols: u32,       // in elements
  stride: u32,     // words per weight row (>= ⌈cols / 4⌉)
  rowStart: u32,   // global row index of chunk row 0
  xOffset: u32,    // in elements
  yOffset: u32,    // in elements
  scaleCols: u32,  // ⌈cols / 128⌉
  accumulate: u32, // 1: y += W·x, 0: y = W·x
  T: u32,          // tokens
  xStride: u32,    // elements between consecutive tokens of x
  yStride: u32,    // elements between consecutive tokens of y
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// the 4 codes of q as f16 values / 256 (exact, subnormals included)
fn decode4h(q: u32) -> vec4<f16> {
  let lo = ((q & 0x80u) << 8u) | ((q & 0x7Fu) << 7u) | ((q & 0x8000u) << 16u) | ((q & 0x7F00u) << 15u);
  let hi = ((q & 0x800000u) >> 8u) | ((q & 0x7F0000u) >> 9u) | (q & 0x80000000u) | ((q & 0x7F000000u) >> 1u);
  return vec4<f16>(bitcast<vec2<f16>>(lo), bitcast<vec2<f16>>(hi));
}

fn x4(at: u32) -> vec4<f16> {
  return vec4<f16>(vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]));
}

// the last, partial word of a row: missing columns read as 0
fn x4tail(at: u32, rem: u32) -> vec4<f16> {
  var v = vec4<f32>(x[at], 0.0, 0.0, 0.0);
  if (rem > 1u) { v.y = x[at + 1u]; }
  if (rem > 2u) { v.z = x[at + 2u]; }
  return vec4<f16>(v);
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
  // tokens past T read the last token (in bounds) and are not written
  let last = params.T - 1u;
  let o0 = params.xOffset + t0 * params.xStride;
  let o1 = params.xOffset + min(t0 + 1u, last) * params.xStride;
  let o2 = params.xOffset + min(t0 + 2u, last) * params.xStride;
  let o3 = params.xOffset + min(t0 + 3u, last) * params.xStride;
  let base = r * params.stride;
  let full = params.cols / 4u;
  let srow = ((params.rowStart + r) / 128u) * params.scaleCols;
  var acc = vec4<f32>(0.0);
  var k = 0u;
  for (var kb = 0u; kb < params.scaleCols; kb++) {
    let kend = min(kb * 32u + 32u, full);
    var part = vec4<f32>(0.0);
    for (; k < kend; k++) {
      let wv = decode4h(w[base + k]);
      let c = 4u * k;
      part += vec4<f32>(vec4<f16>(dot(wv, x4(o0 + c)), dot(wv, x4(o1 + c)), dot(wv, x4(o2 + c)), dot(wv, x4(o3 + c))));
    }
    acc += part * (scale[srow + kb] * 256.0);
  }
  let rem = params.cols & 3u;
  if (rem != 0u) {
    let wv = decode4h(w[base + full]);
    let c = 4u * full;
    let part = vec4<f32>(vec4<f16>(dot(wv, x4tail(o0 + c, rem)), dot(wv, x4tail(o1 + c, rem)), dot(wv, x4tail(o2 + c, rem)), dot(wv, x4tail(o3 + c, rem))));
    acc += part * (scale[srow + (params.cols - 1u) / 128u] * 256.0);
  }
  let nt = min(TT, params.T - t0);
  store(t0, r, acc.x);
  if (nt > 1u) { store(t0 + 1u, r, acc.y); }
  if (nt > 2u) { store(t0 + 2u, r, acc.z); }
  if (nt > 3u) { store(t0 + 3u, r, acc.w); }
}
