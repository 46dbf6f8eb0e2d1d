// shaders/include/down_params.wgsl: the Params of the decode-path down kernels (moe_down_id, moe_down_id_wide,
// moe_down_id_subgroup), one uniform layout for every format.
struct Params {
// #include "expert_shape.wgsl"
  accumulate: u32,
  rsF: u32,       // words per routed down row (cols = F)
  rsFs: u32,      // words per shared down row (cols = Fs)
  Ks: u32,
  scF: u32,       // scale columns per scale row of routed down (FP8 ⌈F / 128⌉, INT4 ⌈F / 32⌉, BF16 0)
  scFs: u32,      // the same for the shared down (cols = Fs)
  t0: u32,        // first token of this dispatch: grid y covers tokens t0 .. (expert offloading's waves)
}
