// mla_attention_rows.wgsl — the barrier-free variant of mla_attention.wgsl for CPU adapters (lavapipe,
// SwiftShader): same math, same bindings, same outputs (and the same split partials for
// mla_decode_reduce.wgsl), but ONE invocation per row ρ = (t, h) that walks the visible keys alone:
//   score(ρ, j) = scale · qLat[ρ] · [ĉ_j | k_pe_j]   (j ≤ p0 + t, within the split)
//   online softmax: on a new max the accumulator is rescaled, then acc += e^{s − m} ĉ_j
// The query row and the R-wide accumulator live in private arrays. On CPU adapters invocations are SIMD
// lanes: private arrays are per-lane vectors and the cache row read is the same address for every lane
// (all heads of a token walk the same keys), so there is no gather, no workgroup memory and no barrier
// (docs/kernels.md §3.4: barriers cost 4-7x on CPU adapters). Measured on lavapipe: ~3.5x faster than the tiled
// kernel for prefill, equal for decode; on SwiftShader equal, with a much longer compile (large private
// arrays), and on a real GPU the big private arrays would spill: ops/attention.ts uses it on lavapipe only.
//
// Bindings (group 0): as mla_attention.wgsl
//   0  qLat    array<f32>  [T, H, L]
//   1  cacheC  array<f32>  ĉ_j[r] at j·cStride + r
//   2  cachePe array<f32>  k_pe_j[i] at j·peStride + peOffset + i
//   3  outO    array<f32>  no split: ō [T·H, R]; split: partial o [splits, T·H, R]
//   4  outML   array<f32>  split: [splits, T·H, 2] (m, l); no split: unused
//   5  params  uniform     Params (include/mla_attention_io.wgsl; rpt, BM, BN unused)
// Workgroup: WG invocations (override, default 16), one row each. Dispatch: (⌈T·H / WG⌉, splits).
// L ≤ 640, R ≤ 512 (the walk over the keys: include/mla_rows_walk.wgsl, shared with mla_attend_rows.wgsl).
// CPU counterpart: model/reference.ts attentionAbsorbed (up to the W_UV product).

override WG: u32 = 16u;

// #include "mla_attention_io.wgsl"
// #include "mla_rows_walk.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let row = gid.x;
  let s = wid.y;
  let rows = p.T * p.H;
  if (row >= rows) { return; }
  let R = p.R;
  let Dr = p.Dr;
  let L = R + Dr;
  let j0 = s * p.chunk;
  let j1 = min(j0 + p.chunk, p.p0 + row / p.H + 1u);

  var q: array<f32, MAX_L>;
  for (var c = 0u; c < L; c++) { q[c] = qLat[row * L + c] * p.scale; }
  var acc: array<f32, MAX_R>;
  let ml = walk_keys(&q, &acc, j0, j1, R, Dr);
  let m = ml.x;
  let l = ml.y;

  if (p.split != 0u) {
    outML[(s * rows + row) * 2u] = m;
    outML[(s * rows + row) * 2u + 1u] = l;
    for (var c = 0u; c < R; c++) { outO[(s * rows + row) * R + c] = acc[c]; }
  } else {
    for (var c = 0u; c < R; c++) { outO[row * R + c] = acc[c] / l; }
  }
}
