// shaders/include/linear.wgsl: what every dense linear kernel shares (fp8_gemv, fp8_gemv_f16, fp8_gemv_subgroup,
// the fp8_gemv_wide family, fp8_gemm, fp8_gemm_f16, fp8_gemm_tiled, bf16_gemm): one uniform layout, filled by the one
// launcher (src/gpu/ops/linear.ts), and the writes of y. The kernel declares `y: array<f32>` and `params: Params`.
// A GEMV reads T, xStride and yStride only where its grid covers tokens (fp8_gemv_wide: grid y = token).
struct Params {
  rows: u32,       // rows of this chunk
  cols: u32,       // in elements
  stride: u32,     // words per weight row (rows padded to 16 bytes, padding 0)
  rowStart: u32,   // global row index of chunk row 0
  xOffset: u32,    // in elements
  yOffset: u32,    // in elements
  scaleCols: u32,  // scales per scale row: FP8 ⌈cols / 128⌉, INT4 ⌈cols / 32⌉, BF16 0
  accumulate: u32, // 1: y += W·x, 0: y = W·x
  T: u32,          // tokens
  xStride: u32,    // elements between consecutive tokens of x
  yStride: u32,    // elements between consecutive tokens of y
  _pad: u32,
}

// y[o] = v, or y[o] += v when accumulating
fn put(o: u32, v: f32) {
  if (params.accumulate != 0u) {
    y[o] += v;
  } else {
    y[o] = v;
  }
}

// output of token t, chunk row r
fn store(t: u32, r: u32, v: f32) {
  put(params.yOffset + t * params.yStride + params.rowStart + r, v);
}

// the valid tokens t .. t+3 of chunk row r (none past `rows` or T)
fn store4(t: u32, r: u32, v: vec4<f32>) {
  if (r >= params.rows || t >= params.T) {
    return;
  }
  store(t, r, v.x);
  if (t + 1u < params.T) { store(t + 1u, r, v.y); }
  if (t + 2u < params.T) { store(t + 2u, r, v.z); }
  if (t + 3u < params.T) { store(t + 3u, r, v.w); }
}
