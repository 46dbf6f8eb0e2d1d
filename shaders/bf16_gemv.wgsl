// bf16_gemv.wgsl — BF16 matrix-vector product (decode: lm_head, and linear weights of BF16 checkpoints):
//   y[yOffset + rowStart + r] (+)= Σ_c bf16(W[r, c]) · x[xOffset + c]
// BF16 codes are read packed, 2 per u32 (little-endian: the low half is column 2w), and widened exactly in
// registers (f32 bits = bf16 << 16).
//
// Bindings (group 0):
//   0  w       array<u32>  [rows, stride]        BF16 codes of one row chunk; a row's padding half-word is 0
//   1  x       array<f32>  [cols] at xOffset
//   2  y       array<f32>  [R] at yOffset        chunk row r is element rowStart + r
//   3  params  uniform     Params
// Workgroup: WG threads (override, default 64), one row per thread, no barriers. Dispatch: ⌈rows / WG⌉.
// CPU counterpart: src/model/reference.ts matVec on bf16ArrayToF32(W) (src/format/fp8.ts).

override WG: u32 = 64u;

struct Params {
  rows: u32,       // rows of this chunk
  cols: u32,       // in elements
  stride: u32,     // words per weight row (>= ⌈cols / 2⌉)
  rowStart: u32,   // global row index of chunk row 0
  xOffset: u32,    // in elements
  yOffset: u32,    // in elements
  accumulate: u32, // 1: y += W·x
  _pad: u32,
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
  if (r >= params.rows) {
    return;
  }
  let base = r * params.stride;
  let full = params.cols / 2u;
  var acc = 0.0;
  for (var k = 0u; k < full; k++) {
    let c = params.xOffset + 2u * k;
    acc += dot(decode2(w[base + k]), vec2<f32>(x[c], x[c + 1u]));
  }
  if ((params.cols & 1u) != 0u) {
    acc += decode2(w[base + full]).x * x[params.xOffset + params.cols - 1u];
  }
  let o = params.yOffset + params.rowStart + r;
  if (params.accumulate != 0u) {
    y[o] += acc;
  } else {
    y[o] = acc;
  }
}
