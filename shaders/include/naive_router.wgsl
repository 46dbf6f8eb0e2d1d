// shaders/include/naive_router.wgsl: the one Params of the naive router twins (moe_router_logits_naive,
// moe_router_select_naive; the legend is in their headers).
struct Params {
  tokens: u32,     // T
  hidden: u32,     // D, in elements
  experts: u32,    // E
  topk: u32,       // K
  groups: u32,     // G
  topk_group: u32, // TG
  norm: u32,       // norm_topk_prob (0 / 1)
  scaling: f32,    // routed_scaling_factor
}
