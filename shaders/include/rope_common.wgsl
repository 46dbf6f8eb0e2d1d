// shaders/include/rope_common.wgsl: what rope.wgsl (in place) and rope_copy.wgsl share: the Params, the
// bindings 0-2 (dst, the (cos, sin) table, params) and the rotation of one pair by the table row of its position
// (include/rope_rotate.wgsl).
struct Params {
  pairs: u32,          // P = Dr / 2
  heads: u32,          // segments per token
  pos0: u32,           // position of token 0 (row of the table)
  dstOffset: u32,      // in elements, start of token 0 segment 0
  dstTokenStride: u32, // in elements
  dstHeadStride: u32,  // in elements
  srcOffset: u32,      // rope_copy only
  srcTokenStride: u32,
  srcHeadStride: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@group(0) @binding(1) var<storage, read> cs: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

// #include "rope_rotate.wgsl"

// (t, h, i) of an invocation: token t = gid.y, segment h and pair i from gid.x; valid = gid.x < heads · pairs
fn pair_of(gid: vec3<u32>) -> vec4<u32> {
  let hi = gid.x;
  return vec4<u32>(gid.y, hi / params.pairs, hi % params.pairs, select(0u, 1u, hi < params.heads * params.pairs));
}

// element index of pair i of segment h of token t in dst
fn dst_at(t: u32, h: u32, i: u32) -> u32 {
  return params.dstOffset + t * params.dstTokenStride + h * params.dstHeadStride + 2u * i;
}
