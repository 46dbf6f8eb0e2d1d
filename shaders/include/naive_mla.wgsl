// shaders/include/naive_mla.wgsl: the one Params of the naive MLA decode twins (mla_scores_naive, mla_softmax_naive,
// mla_combine_naive; the legend is in their headers).
struct Params {
  heads: u32,  // H
  tokens: u32, // S, in tokens
  width: u32,  // W = R + Dr, in elements
  rank: u32,   // R, in elements
  scale: f32,  // softmax scale (Dq^-0.5 · mscale²)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}
