// shaders/include/mla_attention_io.wgsl: the Params and bindings of the MLA attention kernels (mla_attention,
// mla_attention_rows: the same contract; the binding table is in mla_attention.wgsl's header).
struct Params {
  T: u32,         // query tokens
  H: u32,         // heads
  R: u32,         // kv_lora_rank
  Dr: u32,        // qk_rope_head_dim
  p0: u32,        // position of query token 0
  cStride: u32,   // elements between cache rows of ĉ
  peStride: u32,  // elements between cache rows of k_pe
  peOffset: u32,  // element offset of k_pe within its row
  scale: f32,     // softmax_scale
  chunk: u32,     // keys per split
  split: u32,     // 1: write partials
  rpt: u32,       // ⌈R / WG⌉
  BM: u32,        // rows per workgroup
  BN: u32,        // cache rows per tile
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> qLat: array<f32>;
@group(0) @binding(1) var<storage, read> cacheC: array<f32>;
@group(0) @binding(2) var<storage, read> cachePe: array<f32>;
@group(0) @binding(3) var<storage, read_write> outO: array<f32>;
@group(0) @binding(4) var<storage, read_write> outML: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
