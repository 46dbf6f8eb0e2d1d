// shaders/include/naive_experts.wgsl: what the naive routed-expert twins (moe_gateup_id_naive, moe_down_id_naive)
// share: their one Params (the legend is in their headers), the FP8 decode (naive_fp8.wgsl) and the shard test.
struct Params {
  hidden: u32,     // D
  inter: u32,      // F
  topk: u32,       // K
  first: u32,      // first expert id in this shard
  count: u32,      // experts in this shard
  stride_d: u32,   // words per gate/up row (>= ceil(D / 4))
  stride_f: u32,   // words per down row (>= ceil(F / 4))
  accumulate: u32, // down: 0 writes out, 1 adds to it
}

// #include "naive_fp8.wgsl"

fn in_shard(e: u32) -> bool {
  return e >= params.first && e < params.first + params.count;
}
