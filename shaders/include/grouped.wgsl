// shaders/include/grouped.wgsl: what the grouped expert GEMMs (moe_gateup_grouped, moe_down_grouped and their tiled
// twins moe_gateup_tiled, moe_down_tiled) share, spliced
// after their format include: the block shape, one Params for both (each reads its half's row strides and scale
// columns), the scale lookup, and which blocks of moe_align.wgsl's plan a dispatch computes and how many pairs
// each holds. The kernel declares `plan: array<u32>` and `p: Params`.
// #include "expert_scales.wgsl"

const BM: u32 = 16u;
const SENTINEL: u32 = 0xFFFFFFFFu;

struct Params {
// #include "expert_shape.wgsl"
  rsD: u32,       // gate/up: words per weight row (cols = D)
  scD: u32,       // gate/up: scale columns per scale row (FP8 ⌈D / 128⌉, INT4 ⌈D / 32⌉, BF16 0)
  rsF: u32,       // down: words per routed down row (cols = F)
  rsFs: u32,      // down: words per shared down row (cols = Fs)
  scF: u32,       // down: scale columns per scale row of routed down (FP8 ⌈F / 128⌉, INT4 ⌈F / 32⌉, BF16 0)
  scFs: u32,      // down: the same for the shared down (cols = Fs)
  Ks: u32,        // slots per token in h
  E: u32,         // the shared expert's id in plan
  pb: u32,        // offset of the pair ids in plan
  _pad0: u32,
  _pad1: u32,
}

// true when this dispatch computes the blocks of expert e: a routed expert of the shard [e0, e1), or the shared
// expert (id E) when doShared
fn runs(e: u32) -> bool {
  if (e == p.E) { return p.doShared != 0u; }
  return e >= p.e0 && e < p.e1;
}

// the valid pairs of the block whose pair ids start at plan[pb]: a prefix of its BM rows (moe_align scatters each
// expert's pairs from the start of its segment), so a sparse block (Kimi K2 prefill: ~5 tokens per expert per
// 256-token chunk) does not pay for 16 rows
fn pairs(pb: u32) -> u32 {
  var n = 0u;
  for (var i = 0u; i < BM; i++) { if (plan[pb + i] != SENTINEL) { n = i + 1u; } }
  return n;
}
