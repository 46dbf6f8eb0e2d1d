// shaders/include/expert_shape.wgsl: the fields every expert kernel's Params starts with (gateup_params.wgsl,
// down_params.wgsl, grouped.wgsl), spliced inside the struct: the MoE shape and this dispatch's shard.
  T: u32,
  D: u32,         // hidden
  K: u32,         // routed slots per token
  F: u32,         // routed expert width
  Fs: u32,        // shared expert width (0: none)
  Fmax: u32,      // row stride of h
  e0: u32,        // first expert of this shard
  e1: u32,        // one past its last
  doShared: u32,  // 1: this dispatch computes the shared expert
