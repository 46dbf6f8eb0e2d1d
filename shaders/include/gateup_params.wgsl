// shaders/include/gateup_params.wgsl: the Params of the decode-path gate/up kernels (moe_gateup_id,
// moe_gateup_id_wide, moe_gateup_id_subgroup), one uniform layout for every format.
struct Params {
  T: u32,
  D: u32,         // hidden
  K: u32,         // routed slots per token
  F: u32,         // routed expert width
  Fs: u32,        // shared expert width (0: none)
  Fmax: u32,      // row stride of h
  e0: u32,        // first expert of this shard
  e1: u32,        // one past its last
  doShared: u32,  // 1: this dispatch computes slot K
  rsD: u32,       // words per weight row (cols = D)
  scD: u32,       // scale columns per scale row (FP8 ⌈D / 128⌉, INT4 ⌈D / 32⌉, BF16 0)
  Ks: u32,        // slots per token in h
  t0: u32,        // first token of this dispatch: grid z covers tokens t0 .. (expert offloading's waves)
}
