// shaders/include/absorb_io.wgsl: what the absorb kernel families mla_absorb_q and mla_absorb_v share, spliced after
// their format include (FP8 or BF16 kv_b): the Params, the bindings, kv_b's 4-column groups and its scale lookup.
// Both read kv_b [H·(Dn+Dv), R] in the padded-row layout of ops/fp8-layout.ts, a thread's 4 adjacent columns at a
// time: one word of FP8 codes (all 4 in one 128-column scale block) or two words of BF16 codes (rows are padded to
// 16 bytes, so the second word of a row's last group is inside the row; padding decodes to 0).
const MAX_TT: u32 = 8u;

struct Params {
  T: u32,          // tokens
  H: u32,          // heads
  Dn: u32,         // qk_nope_head_dim
  Dr: u32,         // qk_rope_head_dim
  Dv: u32,         // v_head_dim
  R: u32,          // kv_lora_rank
  rowStride: u32,  // words per kv_b row
  scaleCols: u32,  // scale columns per scale row: FP8 ⌈R / 128⌉, BF16 0
  TT: u32,         // tokens per thread (≤ MAX_TT)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

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
