// moe_down_id.wgsl — the second half of the experts for decode / small T, with the weighted combine and the
// residual add fused (docs/model.md §6.5):
//   out[t, d] = (accumulate ? out[t, d] : 0) + Σ_{k < K, ids[t,k] in shard} Dn_e[d] · h[t, k, :F]
//                                            + (doShared ? DnS[d] · h[t, K, :Fs] : 0)
// h already carries the combine weight (moe_gateup_id.wgsl), so this is a sum of mat-vecs; Dn_e = down_proj of
// expert e [D, F]. A kernel family (moe_down_id, _bf16, _int4: the weight format from shaders/include/format_*.wgsl,
// dot products as moe_gateup_id.wgsl). Every output row is owned by one thread, which loops over the slots in a
// fixed order: deterministic, no atomics. Later shards run with accumulate = 1.
//
// Bindings (group 0), the same for every format:
//   0  xin       array<f32>  [T, Ks, Fmax]          h
//   1  ids       array<u32>  [T, K]
//   2  codes     array<u32>  stack [e1-e0, D, rsF]  down_proj of the shard's experts, padded rows
//   3  scales    array<f32>  stack [e1-e0, smat(D, scF)]   (any 16 bytes for BF16)
//   4  shCodes   array<u32>  [D, rsFs]              shared expert down_proj (any 16 bytes when Fs = 0)
//   5  shScales  array<f32>  [smat(D, scFs)]
//   6  out       array<f32>  [T, D]                 read (accumulate) and written
//   7  params    uniform     Params
// Workgroup: WG threads (override, default 64), one output row d each, no barriers. Dispatch: (⌈D / WG⌉, Tw): tokens t0 .. t0 + Tw - 1 (Tw = T, t0 = 0 unless offloading runs waves).
// CPU counterpart: model/reference.ts moe (Σ_k w_k · down_e(…) + shared).
// #formats fp8 bf16 int4

override WG: u32 = 64u;

// #include "down_id_io.wgsl"

// #include "format.wgsl"
// #include "rowdot.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let d = gid.x;
  let t = wid.y + p.t0;
  if (d >= p.D) { return; }
  var acc = 0.0;
  if (p.accumulate != 0u) { acc = out[t * p.D + d]; }
  let mw = p.D * p.rsF;         // words per expert matrix
  let ms = smat(p.D, p.scF);    // scales per expert matrix
  for (var k = 0u; k < p.K; k++) {
    let e = ids[t * p.K + k];
    if (e >= p.e0 && e < p.e1) {
      let m = e - p.e0;
      acc += dot_routed(m * mw + d * p.rsF, m * ms + srow(d, p.scF), (t * p.Ks + k) * p.Fmax, p.F);
    }
  }
  if (p.doShared != 0u) {
    acc += dot_shared(d * p.rsFs, srow(d, p.scFs), (t * p.Ks + p.K) * p.Fmax, p.Fs);
  }
  out[t * p.D + d] = acc;
}
