// rope_copy.wgsl — rotary embedding as rope.wgsl, reading the segments from `src` and writing the rotated values
// to `dst` (k_pe from kv_a's output into the latent cache row of its position):
//   dst[dstOffset + t·dstTokenStride + h·dstHeadStride + 2i ..] = rotate(src[srcOffset + t·srcTokenStride
//                                                                     + h·srcHeadStride + 2i ..])
//
// Bindings (group 0):
//   0  dst     array<f32>  written
//   1  cs      array<f32>  [ctx, P, 2]  (cos, sin), as rope.wgsl
//   2  params  uniform     Params (include/rope_common.wgsl)
//   3  src     array<f32>  read (never the same buffer as dst)
// Workgroup: WG threads (override, default 64) over (h, i) flattened. Dispatch: (⌈heads·P / WG⌉, T).
// CPU counterpart: src/model/rope.ts applyRope.

override WG: u32 = 64u;

// #include "rope_common.wgsl"

@group(0) @binding(3) var<storage, read> src: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let hi = gid.x;
  let t = gid.y;
  if (hi >= params.heads * params.pairs) {
    return;
  }
  let h = hi / params.pairs;
  let i = hi % params.pairs;
  let si = params.srcOffset + t * params.srcTokenStride + h * params.srcHeadStride + 2u * i;
  let v = rotate(src[si], src[si + 1u], t, i);
  let at = params.dstOffset + t * params.dstTokenStride + h * params.dstHeadStride + 2u * i;
  dst[at] = v.x;
  dst[at + 1u] = v.y;
}
