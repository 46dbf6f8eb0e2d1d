// moe_combine.wgsl — sums the per-slot expert outputs of each token, with the residual add fused:
//   byShard 0:  out[t, d] = (accumulate ? out[t, d] : 0) + Σ_{k < Ks} y[t, k, d]        (fixed slot order)
//   byShard 1:  out[t, d] = (accumulate ? out[t, d] : 0) + Σ_{k < K, e0 ≤ ids[t, k] < e1} y[t, k, d]
//                                                        + (doShared ? y[t, K, d] : 0)
// byShard 0 after the grouped GEMMs (prefill); byShard 1 after each shard of the by-expert kernels (moe_*_union,
// batched decode): one combine per shard adds exactly the terms moe_down_id_wide adds in that shard's dispatch, in
// its order, so the by-expert path equals the by-id path bit for bit.
// y already carries the combine weights (and slot K is the shared expert, weight 1), docs/model.md §6.5.
//
// Bindings (group 0):
//   0  y       array<f32>  [T, Ks, D]
//   1  out     array<f32>  [T, D]      read (accumulate) and written
//   2  ids     array<u32>  [T, K]      byShard: the experts of each slot (otherwise any 16 bytes, not read)
//   3  params  uniform     Params
// Workgroup: WG threads (override, default 64), one element each; dispatch (⌈D / WG⌉, Tw): tokens t0 .. t0 + Tw - 1.
// CPU counterpart: model/reference.ts moe (the Σ over selected experts + shared).

override WG: u32 = 64u;

struct Params {
  T: u32,
  D: u32,
  Ks: u32,
  accumulate: u32,
  t0: u32,        // first token: grid y covers tokens t0 .. (the by-expert decode path's token waves)
  byShard: u32,   // 1: only the slots whose expert is in [e0, e1), then the shared slot when doShared
  K: u32,         // byShard: routed slots per token
  e0: u32,
  e1: u32,
  doShared: u32,
}

@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let d = gid.x;
  let t = wid.y + p.t0;
  if (d >= p.D) { return; }
  var acc = 0.0;
  if (p.accumulate != 0u) { acc = out[t * p.D + d]; }
  if (p.byShard == 0u) {
    for (var k = 0u; k < p.Ks; k++) { acc += y[(t * p.Ks + k) * p.D + d]; }
  } else {
    for (var k = 0u; k < p.K; k++) {
      let e = ids[t * p.K + k];
      if (e >= p.e0 && e < p.e1) { acc += y[(t * p.Ks + k) * p.D + d]; }
    }
    if (p.doShared != 0u) { acc += y[(t * p.Ks + p.K) * p.D + d]; }
  }
  out[t * p.D + d] = acc;
}
