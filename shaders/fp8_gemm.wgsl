// fp8_gemm.wgsl — block-FP8 matrix-matrix product for prefill (T tokens), the f32 path:
//   y[yOffset + t·yStride + rowStart + r] (+)= Σ_c e4m3(W[r, c]) · scale[(rowStart + r) / 128, c / 128]
//                                                 · x[xOffset + t·xStride + c]
// Each thread owns one weight row and a tile of TT tokens: a decoded word of 4 FP8 codes is reused for all TT
// tokens from registers, so the weights are read ⌈T / TT⌉ times instead of T times. The block scale is folded
// once per 128-column block per token. No workgroup memory, no barriers (slow on CPU adapters, kernels.md §3.4).
//
// Bindings (group 0):
//   0  w       array<u32>  [rows, stride]            FP8 codes of one row chunk (row padding bytes are 0)
//   1  scale   array<f32>  [⌈R/128⌉, scaleCols]      block scales of the whole tensor (R = all rows)
//   2  x       array<f32>  [T, xStride] at xOffset   inputs (cols used per token)
//   3  y       array<f32>  [T, yStride] at yOffset   outputs; chunk row r is column rowStart + r
//   4  params  uniform     Params
// Workgroup: WG threads (override, default 64) along rows. Dispatch: (⌈rows / WG⌉, ⌈T / TT⌉).
// CPU counterpart: src/model/reference.ts linear on dequantizeFp8Block(W) (src/format/fp8.ts).

override WG: u32 = 64u;
const TT: u32 = 8u; // tokens per thread

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

// E4M3FN code (low 8 bits of b) -> f32, exact (kernels.md §3.1 (A)); NaN codes decode to ±480.
fn e4m3(b: u32) -> f32 {
  let s = (b & 0x80u) << 24u;
  let e = (b >> 3u) & 0xFu;
  let m = b & 7u;
  let normal = bitcast<f32>(s | ((e + 120u) << 23u) | (m << 20u));
  let sub = bitcast<f32>(s | bitcast<u32>(f32(m) * 0.001953125));
  return select(normal, sub, e == 0u);
}

fn decode4(q: u32) -> vec4<f32> {
  return vec4<f32>(e4m3(q), e4m3(q >> 8u), e4m3(q >> 16u), e4m3(q >> 24u));
}

fn x4(at: u32) -> vec4<f32> {
  return vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  let t0 = gid.y * TT;
  if (r >= params.rows || t0 >= params.T) {
    return;
  }
  // token rows past T read the last token (in bounds) and are not written
  var xo: array<u32, TT>;
  for (var j = 0u; j < TT; j++) {
    xo[j] = params.xOffset + min(t0 + j, params.T - 1u) * params.xStride;
  }
  let base = r * params.stride;
  let full = params.cols / 4u;
  let srow = ((params.rowStart + r) / 128u) * params.scaleCols;
  var acc = array<f32, TT>();
  var k = 0u;
  for (var kb = 0u; kb < params.scaleCols; kb++) {
    let kend = min(kb * 32u + 32u, full);
    var part = array<f32, TT>(); // explicit: re-zeroed every block
    for (; k < kend; k++) {
      let wv = decode4(w[base + k]);
      for (var j = 0u; j < TT; j++) {
        part[j] += dot(wv, x4(xo[j] + 4u * k));
      }
    }
    let s = scale[srow + kb];
    for (var j = 0u; j < TT; j++) {
      acc[j] += part[j] * s;
    }
  }
  let rem = params.cols & 3u;
  if (rem != 0u) {
    let wv = decode4(w[base + full]) * scale[srow + (params.cols - 1u) / 128u];
    for (var j = 0u; j < TT; j++) {
      let c0 = xo[j] + 4u * full;
      var xv = vec4<f32>(x[c0], 0.0, 0.0, 0.0);
      if (rem > 1u) { xv.y = x[c0 + 1u]; }
      if (rem > 2u) { xv.z = x[c0 + 2u]; }
      acc[j] += dot(wv, xv);
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
