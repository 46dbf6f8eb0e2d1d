// moe_down_id_subgroup.wgsl — moe_down_id.wgsl with one SUBGROUP per output row instead of one thread:
//   out[t, d] = (accumulate ? out[t, d] : 0) + Σ_{k < K, ids[t,k] in shard} Dn_e[d] · h[t, k, :F]
//                                            + (doShared ? DnS[d] · h[t, K, :Fs] : 0)
// Lanes read adjacent u32 words of the row (contiguous loads), each lane folds the block scale into its words,
// one subgroupAdd per row reduces all slots at once; lane 0 writes. Deterministic for a given subgroup size.
// Subgroup size from the builtin, never hard-coded.
//
// Bindings (group 0): as moe_down_id.wgsl (0 xin = h, 1 ids, 2 codes, 3 scales, 4 shCodes, 5 shScales,
//   6 out, 7 params).
// Workgroup: WG threads (override, default 64) = WG / subgroup_size subgroups; RPW (override, default 16)
// rows per workgroup. Dispatch: (⌈D / RPW⌉, Tw): tokens t0 .. t0 + Tw - 1.
// CPU counterpart: model/reference.ts moe (Σ_k w_k · down_e(…) + shared).

enable subgroups;

override WG: u32 = 64u;
override RPW: u32 = 16u;

// #include "down_id_io.wgsl"

// four E4M3FN codes of a word -> f32 (docs/kernels.md §3.1 (A), exact incl. subnormals; NaN codes give ±480)
// #include "fp8x4.wgsl"

// xin[xo + c .. xo + c + 3], lanes at or past n read as 0 (never past the row)
fn x4(xo: u32, c: u32, n: u32) -> vec4<f32> {
  if (c + 4u <= n) { return vec4<f32>(xin[xo + c], xin[xo + c + 1u], xin[xo + c + 2u], xin[xo + c + 3u]); }
  let last = xo + n - 1u;
  return vec4<f32>(xin[xo + c], select(0.0, xin[min(xo + c + 1u, last)], c + 1u < n),
                   select(0.0, xin[min(xo + c + 2u, last)], c + 2u < n), 0.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_size) sgSize: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let t = wid.y + p.t0;
  let nsg = WG / sgSize;
  let sg = lid / sgSize;
  let dBase = wid.x * RPW;
  let mw = p.D * p.rsF;                    // words per expert matrix
  let ms = ((p.D + 127u) / 128u) * p.scF;  // scales per expert matrix
  let wordsF = (p.F + 3u) / 4u;
  let wordsFs = (p.Fs + 3u) / 4u;
  for (var r0 = 0u; r0 < RPW; r0 += nsg) {
    let d = dBase + r0 + sg;
    let dc = min(d, p.D - 1u); // rows past D compute row D - 1 and are not written
    var acc = 0.0;
    for (var k = 0u; k < p.K; k++) {
      let e = ids[t * p.K + k];
      if (e >= p.e0 && e < p.e1) {
        let m = e - p.e0;
        let row = m * mw + dc * p.rsF;
        let srow = m * ms + (dc / 128u) * p.scF;
        let xo = (t * p.Ks + k) * p.Fmax;
        for (var wi = lane; wi < wordsF; wi += sgSize) {
          acc += dot(fp8x4(codes[row + wi]), x4(xo, wi * 4u, p.F)) * scales[srow + wi / 32u];
        }
      }
    }
    if (p.doShared != 0u) {
      let row = dc * p.rsFs;
      let srow = (dc / 128u) * p.scFs;
      let xo = (t * p.Ks + p.K) * p.Fmax;
      for (var wi = lane; wi < wordsFs; wi += sgSize) {
        acc += dot(fp8x4(shCodes[row + wi]), x4(xo, wi * 4u, p.Fs)) * shScales[srow + wi / 32u];
      }
    }
    acc = subgroupAdd(acc);
    if (lane == 0u && d < p.D && r0 + sg < RPW) {
      var base = 0.0;
      if (p.accumulate != 0u) { base = out[t * p.D + d]; }
      out[t * p.D + d] = base + acc;
    }
  }
}
