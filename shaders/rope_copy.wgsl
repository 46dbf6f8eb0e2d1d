// rope_copy.wgsl — rotary embedding as rope.wgsl, reading the segments from `src` and writing the rotated values
// to `dst` (k_pe from kv_a's output into the latent cache row of its position):
//   dst[dstOffset + t·dstTokenStride + h·dstHeadStride + 2i ..] = rotate(src[srcOffset + t·srcTokenStride
//                                                                     + h·srcHeadStride + 2i ..])
//
// Bindings (group 0): as rope.wgsl (0 dst, written here; 1 cs; 2 params, every field used), and
//   3  src     array<f32>  read (never the same buffer as dst)
// Workgroup and dispatch as rope.wgsl. CPU counterpart: src/model/rope.ts applyRope.

override WG: u32 = 64u;

// #include "rope_common.wgsl"

@group(0) @binding(3) var<storage, read> src: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let q = pair_of(gid);
  if (q.w == 0u) { return; }
  let si = params.srcOffset + q.x * params.srcTokenStride + q.y * params.srcHeadStride + 2u * q.z;
  let v = rotate(src[si], src[si + 1u], q.x, q.z);
  let at = dst_at(q.x, q.y, q.z);
  dst[at] = v.x;
  dst[at + 1u] = v.y;
}
