// rope.wgsl — rotary embedding with YaRN in place, interleaved pairs (docs/model.md §5.3), from CPU-computed
// tables (§5.6):
//   (a, b) = v[2i], v[2i+1];  v'[2i] = a·cos[p, i] − b·sin[p, i];  v'[2i+1] = a·sin[p, i] + b·cos[p, i]
// for every token t (position p = pos0 + t), segment h < heads, pair i < P, the segment at
// dstOffset + t·dstTokenStride + h·dstHeadStride (q_pe inside q). rope_copy.wgsl writes the rotation of another
// buffer's segments instead (k_pe into the latent cache).
//
// Bindings (group 0):
//   0  dst     array<f32>  rotated in place
//   1  cs      array<f32>  [ctx, P, 2]  (cos, sin) of θ = fp32(p · inv_f_i), src/model/rope.ts ropeTables
//   2  params  uniform     Params (include/rope_common.wgsl; the src* fields are unused)
// Workgroup: WG threads (override, default 64) over (h, i) flattened. Dispatch: (⌈heads·P / WG⌉, T).
// CPU counterpart: src/model/rope.ts applyRope.

override WG: u32 = 64u;

// #include "rope_common.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let q = pair_of(gid);
  if (q.w == 0u) { return; }
  let at = dst_at(q.x, q.y, q.z);
  let v = rotate(dst[at], dst[at + 1u], q.x, q.z);
  dst[at] = v.x;
  dst[at + 1u] = v.y;
}
