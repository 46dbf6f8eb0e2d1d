// shaders/include/kvb_w4.wgsl: kv_b_proj's 4-column groups and its scale lookup, for the kernels that read kv_b
// [H·(Dn+Dv), R] in the padded-row layout of ops/fp8-layout.ts (mla_absorb_q, mla_absorb_v through absorb_io.wgsl;
// mla_attend_rows). Spliced after the format include; the including kernel declares `w: array<u32>` (codes),
// `scale: array<f32>` and a uniform `p` with rowStride (words per row).
// columns 4g .. 4g + 3 of kv_b row `row`, exact and unscaled: one word of FP8 codes or two of BF16 codes
// #include "fp8x4.wgsl"
// #include "bf16x4.wgsl"
fn w4(row: u32, g: u32) -> vec4<f32> {
  let o = row * p.rowStride + g * (4u / QCOLS);
  if (QCOLS == 2u) { return bf16x4(w[o], w[o + 1u]); }
  return fp8x4(w[o]);
}

// scale i of kv_b (1 for a format without scales)
fn scale_at(i: u32) -> f32 {
  if (HAS_SCALES) { return scale[i]; }
  return 1.0;
}
