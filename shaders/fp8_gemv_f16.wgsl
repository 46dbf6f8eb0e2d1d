// fp8_gemv_f16.wgsl — block-FP8 matrix-vector product (decode), `shader-f16` variant (opt-in --precision f16):
//   y[yOffset + rowStart + r] (+)= Σ_c e4m3(W[r, c]) · scale[(rowStart + r) / 128, c / 128] · x[xOffset + c]
// Four FP8 codes become four f16 values with integer ops and one bitcast<vec2<f16>> per pair (E4M3 → f16 is
// exact: the code's 7 magnitude bits land at f16 bits 7..13, value / 256, subnormals included); x is rounded to
// f16 and each 4-term dot is formed in f16, then accumulated in f32 and scaled by scale · 256 per 128-column
// block. Error vs the f32 path: x rounding (2^-11 relative) and f16 partial dots, ~1e-3 of Σ|w·x|.
//
// Bindings (group 0): as fp8_gemv.wgsl
//   0  w array<u32> [rows, stride]   1  scale array<f32> [⌈R/128⌉, scaleCols]   2  x array<f32> [cols]
//   3  y array<f32> [R]              4  params uniform Params
// Workgroup: WG threads (override, default 64), one row per thread, no barriers. Dispatch: ⌈rows / WG⌉.
// CPU counterpart: src/model/reference.ts matVec on dequantizeFp8Block(W) (with the tolerance above).
enable f16;

override WG: u32 = 64u;

struct Params {
  rows: u32,
  cols: u32,
  stride: u32,
  rowStart: u32,
  xOffset: u32,
  yOffset: u32,
  scaleCols: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// the 4 codes of q as f16 values / 256 (sign to bit 15, exponent+mantissa bits to 7..13 of each half)
fn decode4h(q: u32) -> vec4<f16> {
  let lo = ((q & 0x80u) << 8u) | ((q & 0x7Fu) << 7u) | ((q & 0x8000u) << 16u) | ((q & 0x7F00u) << 15u);
  let hi = ((q & 0x800000u) >> 8u) | ((q & 0x7F0000u) >> 9u) | (q & 0x80000000u) | ((q & 0x7F000000u) >> 1u);
  return vec4<f16>(bitcast<vec2<f16>>(lo), bitcast<vec2<f16>>(hi));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  if (r >= params.rows) {
    return;
  }
  let base = r * params.stride;
  let full = params.cols / 4u;
  let srow = ((params.rowStart + r) / 128u) * params.scaleCols;
  var acc = 0.0;
  var k = 0u;
  for (var kb = 0u; kb < params.scaleCols; kb++) {
    let kend = min(kb * 32u + 32u, full);
    var part = 0.0;
    for (; k < kend; k++) {
      let at = params.xOffset + 4u * k;
      let xh = vec4<f16>(vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]));
      part += f32(dot(decode4h(w[base + k]), xh));
    }
    acc += part * (scale[srow + kb] * 256.0);
  }
  let rem = params.cols & 3u;
  if (rem != 0u) {
    let c0 = params.xOffset + 4u * full;
    var xv = vec4<f32>(x[c0], 0.0, 0.0, 0.0);
    if (rem > 1u) { xv.y = x[c0 + 1u]; }
    if (rem > 2u) { xv.z = x[c0 + 2u]; }
    acc += f32(dot(decode4h(w[base + full]), vec4<f16>(xv))) * (scale[srow + (params.cols - 1u) / 128u] * 256.0);
  }
  let o = params.yOffset + params.rowStart + r;
  if (params.accumulate != 0u) {
    y[o] += acc;
  } else {
    y[o] = acc;
  }
}
