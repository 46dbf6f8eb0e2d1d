// bf16_gemm.wgsl — BF16 matrix-matrix product for prefill (T tokens): lm_head over many positions, and linear
// weights of BF16 checkpoints:
//   y[yOffset + t·yStride + rowStart + r] (+)= Σ_c bf16(W[r, c]) · x[xOffset + t·xStride + c]
// One thread owns one row and a tile of 4 tokens (include/gemm_t4.wgsl, the entry point, as fp8_gemm.wgsl): the
// widened weight pair of a word is reused for the 4 tokens from registers.
//
// Bindings (group 0):
//   0  w       array<u32>  [rows, stride]            BF16 codes of one row chunk, 2 per word
//   1  x       array<f32>  [T, xStride] at xOffset
//   2  y       array<f32>  [T, yStride] at yOffset
//   3  params  uniform     Params (include/linear.wgsl; scaleCols unused)
// Workgroup: WG threads (override, default 64) along rows, no barriers. Dispatch: (⌈rows / WG⌉, ⌈T / 4⌉).
// CPU counterpart: src/model/reference.ts linear on bf16ArrayToF32(W).

override WG: u32 = 64u;

// #include "linear.wgsl"

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// #include "gemm_t4.wgsl"

fn decode2(q: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(q << 16u), bitcast<f32>(q & 0xFFFF0000u));
}

fn x2(at: u32) -> vec2<f32> {
  return vec2<f32>(x[at], x[at + 1u]);
}

// row r against the 4 tokens whose x rows start at o
fn row4(r: u32, o: vec4<u32>) -> vec4<f32> {
  let base = r * params.stride;
  let full = params.cols / 2u;
  var acc = vec4<f32>(0.0);
  for (var k = 0u; k < full; k++) {
    let wv = decode2(w[base + k]);
    let c = 2u * k;
    acc += vec4<f32>(dot(wv, x2(o.x + c)), dot(wv, x2(o.y + c)), dot(wv, x2(o.z + c)), dot(wv, x2(o.w + c)));
  }
  if ((params.cols & 1u) != 0u) {
    let wl = decode2(w[base + full]).x;
    let c = params.cols - 1u;
    acc += wl * vec4<f32>(x[o.x + c], x[o.y + c], x[o.z + c], x[o.w + c]);
  }
  return acc;
}
