// mla_kv_rope.wgsl — the key/query tail of MLA for a chunk of T tokens in one dispatch (docs/model.md §4.2, §4.3,
// §5.3): for token t at position p = pos0 + t, with kv_a's output row kv[t] = [c (R) | k_pe (Dr)] at
// kvOffset + t·kvStride,
//   cache[cacheOffset + t·cacheStride + j]          = w[j] · c_j / sqrt(mean_k(c_k²) + eps)     j < R  (kv_a_layernorm)
//   cache[cacheOffset + t·cacheStride + R + 2i ..]  = rotate(k_pe[2i], k_pe[2i+1])             i < P  (k_pe, RoPE)
//   q[qOffset + t·qTokenStride + h·qHeadStride + 2i ..] = rotate(itself)            h < heads, i < P  (q_pe in place)
// rotate as rope.wgsl: interleaved pairs, the (cos, sin) table row of p. It replaces rmsnorm (kv_a_layernorm into the
// cache) + rope_copy (k_pe) + rope (q_pe) of the same chunk with the same arithmetic in the same order (the RMS factor
// of include/rms_inv.wgsl, the rotation of include/rope_rotate.wgsl): its outputs are bit-identical to theirs.
//
// Bindings (group 0):
//   0  src     array<f32>  [T, kvStride] at kvOffset        kv_a's output (read; never the same buffer as cache or q)
//   1  weight  array<f32>  [R]                              kv_a_layernorm's weight, widened from BF16 at upload
//   2  cache   array<f32>  [T, cacheStride] at cacheOffset  latent cache rows of positions pos0 .. pos0+T-1 (written)
//   3  q       array<f32>  [T, qTokenStride] at qOffset     queries; the heads' rope segments are rotated in place
//   4  cs      array<f32>  [ctx, P, 2]  (cos, sin) of θ = fp32(p · inv_f_i), src/model/rope.ts ropeTables
//   5  params  uniform     Params
// Workgroup: WG threads (override, default 64) per token: the RMS factor (strided partial sums, two barriers), then
// every thread writes its strided latent outputs and rotates its strided pairs of k_pe and of the heads·P q pairs.
// Dispatch: T workgroups.
// CPU counterpart: src/model/reference.ts mla (rmsNorm of c with kvANorm; rope.ts applyRope of k_pe and q_pe).

override WG: u32 = 64u;

struct Params {
  rank: u32,         // R, latent columns normalised into the cache
  pairs: u32,        // P = Dr / 2
  heads: u32,        // q rope segments per token
  pos0: u32,         // position of token 0 (row of the table)
  kvOffset: u32,     // in elements
  kvStride: u32,     // elements between tokens of src (≥ R + Dr)
  cacheOffset: u32,  // in elements: the row of position pos0
  cacheStride: u32,  // elements between cache rows (≥ R + Dr)
  qOffset: u32,      // in elements: token 0, head 0's rope segment (q's Dn skipped)
  qTokenStride: u32, // in elements
  qHeadStride: u32,  // in elements
  eps: f32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> cache: array<f32>;
@group(0) @binding(3) var<storage, read_write> q: array<f32>;
@group(0) @binding(4) var<storage, read> cs: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

fn rms_src(i: u32) -> f32 { return src[i]; }
// #include "rms_inv.wgsl"
// #include "rope_rotate.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  let R = params.rank;
  let ib = params.kvOffset + t * params.kvStride;
  let s = rms_inv(ib, R, params.eps, lid);
  let ob = params.cacheOffset + t * params.cacheStride;
  for (var i = lid; i < R; i += WG) {
    cache[ob + i] = weight[i] * (src[ib + i] * s);
  }
  for (var i = lid; i < params.pairs; i += WG) {
    let at = ib + R + 2u * i;
    let v = rotate(src[at], src[at + 1u], t, i);
    cache[ob + R + 2u * i] = v.x;
    cache[ob + R + 2u * i + 1u] = v.y;
  }
  let qb = params.qOffset + t * params.qTokenStride;
  for (var hi = lid; hi < params.heads * params.pairs; hi += WG) {
    let i = hi % params.pairs;
    let at = qb + (hi / params.pairs) * params.qHeadStride + 2u * i;
    let v = rotate(q[at], q[at + 1u], t, i);
    q[at] = v.x;
    q[at + 1u] = v.y;
  }
}
