// rope.wgsl — rotary embedding with YaRN, interleaved pairs (docs/model.md §5.3), from CPU-computed tables (§5.6):
//   (a, b) = v[2i], v[2i+1];  v'[2i] = a·cos[p, i] − b·sin[p, i];  v'[2i+1] = a·sin[p, i] + b·cos[p, i]
// for every token t (position p = pos0 + t), segment h < heads, pair i < P. Entry `main` rotates in place
// (q_pe inside q, segment h at dstOffset + t·dstTokenStride + h·dstHeadStride); entry `copy` reads the
// segments from `src` and writes the rotated values to `dst` (k_pe from kv_a's output into the latent cache).
//
// Bindings (group 0):
//   0  dst     array<f32>  rotated values (read and written by `main`, written by `copy`)
//   1  cs      array<f32>  [ctx, P, 2]  (cos, sin) of θ = fp32(p · inv_f_i), src/model/rope.ts ropeTables
//   2  params  uniform     Params
//   3  src     array<f32>  (entry `copy` only; never the same buffer as dst)
// Workgroup: WG threads (override, default 64) over (h, i) flattened. Dispatch: (⌈heads·P / WG⌉, T).
// CPU counterpart: src/model/rope.ts applyRope.

override WG: u32 = 64u;

struct Params {
  pairs: u32,          // P = Dr / 2
  heads: u32,          // segments per token
  pos0: u32,           // position of token 0 (row of the table)
  dstOffset: u32,      // in elements, start of token 0 segment 0
  dstTokenStride: u32, // in elements
  dstHeadStride: u32,  // in elements
  srcOffset: u32,      // `copy` only
  srcTokenStride: u32,
  srcHeadStride: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@group(0) @binding(1) var<storage, read> cs: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read> src: array<f32>;

fn rotate(a: f32, b: f32, t: u32, i: u32) -> vec2<f32> {
  let at = ((params.pos0 + t) * params.pairs + i) * 2u;
  let c = cs[at];
  let s = cs[at + 1u];
  return vec2<f32>(a * c - b * s, a * s + b * c);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let hi = gid.x;
  let t = gid.y;
  if (hi >= params.heads * params.pairs) {
    return;
  }
  let h = hi / params.pairs;
  let i = hi % params.pairs;
  let at = params.dstOffset + t * params.dstTokenStride + h * params.dstHeadStride + 2u * i;
  let v = rotate(dst[at], dst[at + 1u], t, i);
  dst[at] = v.x;
  dst[at + 1u] = v.y;
}

@compute @workgroup_size(WG)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>) {
  let hi = gid.x;
  let t = gid.y;
  if (hi >= params.heads * params.pairs) {
    return;
  }
  let h = hi / params.pairs;
  let i = hi % params.pairs;
  let srcAt = params.srcOffset + t * params.srcTokenStride + h * params.srcHeadStride + 2u * i;
  let v = rotate(src[srcAt], src[srcAt + 1u], t, i);
  let at = params.dstOffset + t * params.dstTokenStride + h * params.dstHeadStride + 2u * i;
  dst[at] = v.x;
  dst[at + 1u] = v.y;
}
