// fp8_gemm.wgsl — block-FP8 matrix-matrix product for prefill (T tokens); a kernel family over the precision the
// products are formed in (docs/kernels.md §1 "Kernel families"): fp8_gemm (f32) and fp8_gemm_f16 (`shader-f16`,
// opt-in --precision f16), one body, the precision spliced from shaders/include/precision_*.wgsl:
//   y[yOffset + t·yStride + rowStart + r] (+)= Σ_c e4m3(W[r, c]) · scale[(rowStart + r) / 128, c / 128]
//                                                 · x[xOffset + t·xStride + c]
// Each thread owns one weight row and a tile of TT = 4 tokens (include/gemm_t4.wgsl, the entry point): a word of 4
// FP8 codes is decoded once (the precision's pvals, as fp8_gemv.wgsl) and reused for the 4 tokens from registers.
// The block scale (× SMUL) is folded once per 128-column block per token. No workgroup memory, no barriers (slow on
// CPU adapters, docs/kernels.md §3.4). f16: x rounded to f16, each 4-term dot in f16, accumulated in f32 per
// 128-column block (error ~1e-3 of Σ|w·x|, precision_f16.wgsl).
//
// Bindings (group 0), include/linear_io.wgsl:
//   0  w       array<u32>  [rows, stride]            FP8 codes of one row chunk (row padding bytes are 0)
//   1  scale   array<f32>  [⌈R/128⌉, scaleCols]      block scales of the whole tensor (R = all rows)
//   2  x       array<f32>  [T, xStride] at xOffset   inputs (cols used per token)
//   3  y       array<f32>  [T, yStride] at yOffset   outputs; chunk row r is column rowStart + r
//   4  params  uniform     Params (include/linear.wgsl)
// Workgroup: WG threads (override, default 64) along rows. Dispatch: (⌈rows / WG⌉, ⌈T / 4⌉).
// CPU counterpart: src/model/reference.ts linear on dequantizeFp8Block(W) (src/format/fp8.ts); f16 within the
// tolerance above.
// #precisions f32 f16
// #include "precision.wgsl"

override WG: u32 = 64u;

// #include "linear_io.wgsl"
// #include "linear_x.wgsl"
// #include "gemm_t4.wgsl"

// row r against the 4 tokens whose x rows start at o
fn row4(r: u32, o: vec4<u32>) -> vec4<f32> {
  let base = r * params.stride;
  let full = params.cols / 4u;
  let srow = ((params.rowStart + r) / 128u) * params.scaleCols;
  var acc = vec4<f32>(0.0);
  var k = 0u;
  for (var kb = 0u; kb < params.scaleCols; kb++) {
    let kend = min(kb * 32u + 32u, full);
    var part = vec4<f32>(0.0);
    for (; k < kend; k++) {
      let wv = pvals(w[base + k]);
      let c = 4u * k;
      part += vec4<f32>(pdot(wv, x4(o.x + c)), pdot(wv, x4(o.y + c)), pdot(wv, x4(o.z + c)), pdot(wv, x4(o.w + c)));
    }
    acc += part * (scale[srow + kb] * SMUL);
  }
  let rem = params.cols & 3u;
  if (rem != 0u) {
    let wv = pvals(w[base + full]);
    let c = 4u * full;
    let part = vec4<f32>(pdot(wv, x4tail(o.x + c, rem)), pdot(wv, x4tail(o.y + c, rem)), pdot(wv, x4tail(o.z + c, rem)), pdot(wv, x4tail(o.w + c, rem)));
    acc += part * (scale[srow + (params.cols - 1u) / 128u] * SMUL);
  }
  return acc;
}
