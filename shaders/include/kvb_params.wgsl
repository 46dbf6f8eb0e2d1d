// shaders/include/kvb_params.wgsl: the one Params of the kernels that read kv_b_proj (mla_absorb_q, mla_absorb_v
// through absorb_io.wgsl; mla_attend_rows); a field a kernel does not read is passed as 0.
struct Params {
  T: u32,          // tokens
  H: u32,          // heads
  Dn: u32,         // qk_nope_head_dim
  Dr: u32,         // qk_rope_head_dim
  Dv: u32,         // v_head_dim
  R: u32,          // kv_lora_rank
  rowStride: u32,  // words per kv_b row
  scaleCols: u32,  // scale columns per scale row: FP8 ⌈R / 128⌉, BF16 0
  TT: u32,         // absorb kernels: tokens per thread (≤ MAX_TT)
  p0: u32,         // mla_attend_rows: position of query token 0
  cStride: u32,    // mla_attend_rows: elements between cache rows of ĉ
  peStride: u32,   // mla_attend_rows: elements between cache rows of k_pe
  peOffset: u32,   // mla_attend_rows: element offset of k_pe within its row
  scale: f32,      // mla_attend_rows: softmax_scale
  _pad0: u32,
  _pad1: u32,
}
