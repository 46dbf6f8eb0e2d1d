// fp8_gemv.wgsl — block-FP8 matrix-vector product for decode (one token), the f32 path:
//   y[yOffset + rowStart + r] (+)= Σ_c e4m3(W[r, c]) · scale[(rowStart + r) / 128, c / 128] · x[xOffset + c]
// The FP8 codes are read packed (4 per u32, little-endian: byte k of a word is column 4w + k) and decoded in
// registers (docs/kernels.md §3.1 (A), exact); the F32 block scale is applied once per 128-column block to the
// partial dot of that block. No dequantised weight is ever written.
//
// Bindings (group 0):
//   0  w       array<u32>  [rows, stride]            FP8 codes of one row chunk; row r starts at word r·stride,
//                                                    bytes past `cols` in a row are 0 (padded at upload)
//   1  scale   array<f32>  [⌈R/128⌉, scaleCols]      block scales of the whole tensor (R = all rows)
//   2  x       array<f32>  [cols] at xOffset         input vector
//   3  y       array<f32>  [R] at yOffset            output; row r of the chunk is element rowStart + r
//   4  params  uniform     Params
// Workgroup: WG threads (override, default 64), one output row per thread, no barriers (CPU adapters run
// barrier-heavy reductions 4-7x slower, docs/kernels.md §3.4). Dispatch: ⌈rows / WG⌉ workgroups.
// CPU counterpart: src/model/reference.ts matVec on dequantizeFp8Block(W) (src/format/fp8.ts).

override WG: u32 = 64u;

struct Params {
  rows: u32,       // rows of this chunk
  cols: u32,       // columns (input width), in elements
  stride: u32,     // words per weight row (>= ⌈cols / 4⌉)
  rowStart: u32,   // global row index of chunk row 0
  xOffset: u32,    // in elements
  yOffset: u32,    // in elements
  scaleCols: u32,  // ⌈cols / 128⌉
  accumulate: u32, // 1: y += W·x, 0: y = W·x
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// E4M3FN code (low 8 bits of b) -> f32, exact; NaN codes 0x7F/0xFF decode to ±480 (never emitted by quantisers).
fn e4m3(b: u32) -> f32 {
  let s = (b & 0x80u) << 24u;
  let e = (b >> 3u) & 0xFu;
  let m = b & 7u;
  let normal = bitcast<f32>(s | ((e + 120u) << 23u) | (m << 20u));
  let sub = bitcast<f32>(s | bitcast<u32>(f32(m) * 0.001953125)); // m · 2^-9, never an f32 denormal
  return select(normal, sub, e == 0u);
}

// #include "decode4.wgsl"

fn x4(at: u32) -> vec4<f32> {
  return vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  if (r >= params.rows) {
    return;
  }
  let base = r * params.stride;
  let full = params.cols / 4u; // words whose 4 columns all exist
  let srow = ((params.rowStart + r) / 128u) * params.scaleCols;
  var acc = 0.0;
  var k = 0u;
  for (var kb = 0u; kb < params.scaleCols; kb++) {
    let kend = min(kb * 32u + 32u, full); // 32 words = one 128-column block
    var part = 0.0;
    for (; k < kend; k++) {
      part += dot(decode4(w[base + k]), x4(params.xOffset + 4u * k));
    }
    acc += part * scale[srow + kb];
  }
  let rem = params.cols & 3u;
  if (rem != 0u) {
    // the last, partial word: its padding bytes are 0 and the missing x values are masked to 0
    let c0 = params.xOffset + 4u * full;
    var xv = vec4<f32>(x[c0], 0.0, 0.0, 0.0);
    if (rem > 1u) { xv.y = x[c0 + 1u]; }
    if (rem > 2u) { xv.z = x[c0 + 2u]; }
    acc += dot(decode4(w[base + full]), xv) * scale[srow + (params.cols - 1u) / 128u];
  }
  let o = params.yOffset + params.rowStart + r;
  if (params.accumulate != 0u) {
    y[o] += acc;
  } else {
    y[o] = acc;
  }
}
