// shaders/include/gateup_params.wgsl: the Params of the decode-path gate/up kernels (moe_gateup_id,
// moe_gateup_id_wide, moe_gateup_id_subgroup), one uniform layout for every format.
struct Params {
// #include "expert_shape.wgsl"
  rsD: u32,       // words per weight row (cols = D)
  scD: u32,       // scale columns per scale row (FP8 ⌈D / 128⌉, INT4 ⌈D / 32⌉, BF16 0)
  Ks: u32,        // slots per token in h
  t0: u32,        // first token of this dispatch: grid z covers tokens t0 .. (expert offloading's waves)
}
