// shaders/include/rope_rotate.wgsl: the rotation of one interleaved pair by the (cos, sin) table row of its position,
// spliced by include/rope_common.wgsl (rope.wgsl, rope_copy.wgsl) and mla_kv_rope.wgsl (so their rotations are
// bit-identical). The kernel declares `cs: array<f32>` ([ctx, P, 2]) and `params` with fields pos0 and pairs.

// (a, b) rotated by θ of pair i at position pos0 + t
fn rotate(a: f32, b: f32, t: u32, i: u32) -> vec2<f32> {
  let at = ((params.pos0 + t) * params.pairs + i) * 2u;
  let c = cs[at];
  let s = cs[at + 1u];
  return vec2<f32>(a * c - b * s, a * s + b * c);
}
