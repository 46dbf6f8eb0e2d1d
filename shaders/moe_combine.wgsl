// moe_combine.wgsl — sums the per-slot expert outputs of each token, with the residual add fused:
//   out[t, d] = (accumulate ? out[t, d] : 0) + Σ_{k < Ks} y[t, k, d]      (fixed slot order: deterministic)
// After the grouped GEMMs (prefill) or the by-expert kernels (moe_*_union, batched decode).
// y already carries the combine weights (and slot K is the shared expert, weight 1), docs/model.md §6.5.
//
// Bindings (group 0):
//   0  y       array<f32>  [T, Ks, D]
//   1  out     array<f32>  [T, D]      read (accumulate) and written
//   2  params  uniform     Params
// Workgroup: WG threads (override, default 64), one element each; dispatch (⌈D / WG⌉, Tw): tokens t0 .. t0 + Tw - 1.
// CPU counterpart: model/reference.ts moe (the Σ over selected experts + shared).

override WG: u32 = 64u;

struct Params {
  T: u32,
  D: u32,
  Ks: u32,
  accumulate: u32,
  t0: u32,        // first token: grid y covers tokens t0 .. (the by-expert decode path's token waves)
}

@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let d = gid.x;
  let t = wid.y + p.t0;
  if (d >= p.D) { return; }
  var acc = 0.0;
  if (p.accumulate != 0u) { acc = out[t * p.D + d]; }
  for (var k = 0u; k < p.Ks; k++) { acc += y[(t * p.Ks + k) * p.D + d]; }
  out[t * p.D + d] = acc;
}
