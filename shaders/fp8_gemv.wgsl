// fp8_gemv.wgsl — block-FP8 matrix-vector product for decode (one token); a kernel family over the precision the
// products are formed in (docs/kernels.md §1 "Kernel families"): fp8_gemv (f32) and fp8_gemv_f16 (`shader-f16`,
// opt-in --precision f16), one body, the precision spliced from shaders/include/precision_*.wgsl:
//   y[yOffset + rowStart + r] (+)= Σ_c e4m3(W[r, c]) · scale[(rowStart + r) / 128, c / 128] · x[xOffset + c]
// The FP8 codes are read packed (4 per u32, little-endian: byte k of a word is column 4w + k) and decoded in
// registers by the precision's pvals (f32: docs/kernels.md §3.1 (A); f16: E4M3 → f16 / 256 with integer ops and
// bitcast<vec2<f16>>, the 256 folded into the block scale: SMUL), exact; the F32 block scale is applied once per
// 128-column block to the partial dot of that block. No dequantised weight is ever written. f16: x is rounded to
// f16 and each 4-term dot formed in f16, accumulated in f32 (error ~1e-3 of Σ|w·x|, precision_f16.wgsl).
//
// Bindings (group 0), include/linear_io.wgsl:
//   0  w       array<u32>  [rows, stride]            FP8 codes of one row chunk; row r starts at word r·stride,
//                                                    bytes past `cols` in a row are 0 (padded at upload)
//   1  scale   array<f32>  [⌈R/128⌉, scaleCols]      block scales of the whole tensor (R = all rows)
//   2  x       array<f32>  [cols] at xOffset         input vector
//   3  y       array<f32>  [R] at yOffset            output; row r of the chunk is element rowStart + r
//   4  params  uniform     Params (include/linear.wgsl; one token: T, xStride, yStride unused)
// Workgroup: WG threads (override, default 64), one output row per thread, no barriers (CPU adapters run
// barrier-heavy reductions 4-7x slower, docs/kernels.md §3.4). Dispatch: ⌈rows / WG⌉ workgroups.
// CPU counterpart: src/model/reference.ts matVec on dequantizeFp8Block(W) (src/format/fp8.ts); f16 within the
// tolerance above.
// #precisions f32 f16
// #include "precision.wgsl"

override WG: u32 = 64u;

// #include "linear_io.wgsl"
// #include "linear_x.wgsl"

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
      part += pdot(pvals(w[base + k]), x4(params.xOffset + 4u * k));
    }
    acc += part * (scale[srow + kb] * SMUL);
  }
  let rem = params.cols & 3u;
  if (rem != 0u) {
    // the last, partial word: its padding bytes are 0 and the missing x values are masked to 0
    let wl = pvals(w[base + full]);
    acc += pdot(wl, x4tail(params.xOffset + 4u * full, rem)) * (scale[srow + (params.cols - 1u) / 128u] * SMUL);
  }
  put(params.yOffset + params.rowStart + r, acc);
}
