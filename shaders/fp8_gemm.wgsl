// fp8_gemm.wgsl — block-FP8 matrix-matrix product for prefill (T tokens), the f32 path:
//   y[yOffset + t·yStride + rowStart + r] (+)= Σ_c e4m3(W[r, c]) · scale[(rowStart + r) / 128, c / 128]
//                                                 · x[xOffset + t·xStride + c]
// Each thread owns one weight row and a tile of TT = 4 tokens: a decoded word of 4 FP8 codes is reused for the 4
// tokens from registers (vec4 accumulators, no private arrays: lavapipe spills dynamically indexed private
// arrays to memory, 10x slower), so the weights are read ⌈T / 4⌉ times instead of T times. The block scale is folded
// once per 128-column block per token. No workgroup memory, no barriers (slow on CPU adapters, docs/kernels.md §3.4).
//
// Bindings (group 0):
//   0  w       array<u32>  [rows, stride]            FP8 codes of one row chunk (row padding bytes are 0)
//   1  scale   array<f32>  [⌈R/128⌉, scaleCols]      block scales of the whole tensor (R = all rows)
//   2  x       array<f32>  [T, xStride] at xOffset   inputs (cols used per token)
//   3  y       array<f32>  [T, yStride] at yOffset   outputs; chunk row r is column rowStart + r
//   4  params  uniform     Params
// Workgroup: WG threads (override, default 64) along rows. Dispatch: (⌈rows / WG⌉, ⌈T / 4⌉).
// CPU counterpart: src/model/reference.ts linear on dequantizeFp8Block(W) (src/format/fp8.ts).

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

// E4M3FN code (low 8 bits of b) -> f32, exact (docs/kernels.md §3.1 (A)); NaN codes decode to ±480.
// #include "e4m3.wgsl"

// #include "decode4.wgsl"

fn x4(at: u32) -> vec4<f32> {
  return vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]);
}

// the last, partial word of a row: missing columns read as 0
fn x4tail(at: u32, rem: u32) -> vec4<f32> {
  var v = vec4<f32>(x[at], 0.0, 0.0, 0.0);
  if (rem > 1u) { v.y = x[at + 1u]; }
  if (rem > 2u) { v.z = x[at + 2u]; }
  return v;
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
      let wv = decode4(w[base + k]);
      let c = 4u * k;
      part += vec4<f32>(dot(wv, x4(o0 + c)), dot(wv, x4(o1 + c)), dot(wv, x4(o2 + c)), dot(wv, x4(o3 + c)));
    }
    acc += part * scale[srow + kb];
  }
  let rem = params.cols & 3u;
  if (rem != 0u) {
    let wv = decode4(w[base + full]);
    let c = 4u * full;
    let part = vec4<f32>(dot(wv, x4tail(o0 + c, rem)), dot(wv, x4tail(o1 + c, rem)), dot(wv, x4tail(o2 + c, rem)), dot(wv, x4tail(o3 + c, rem)));
    acc += part * scale[srow + (params.cols - 1u) / 128u];
  }
  let nt = min(TT, params.T - t0);
  store(t0, r, acc.x);
  if (nt > 1u) { store(t0 + 1u, r, acc.y); }
  if (nt > 2u) { store(t0 + 2u, r, acc.z); }
  if (nt > 3u) { store(t0 + 3u, r, acc.w); }
}
