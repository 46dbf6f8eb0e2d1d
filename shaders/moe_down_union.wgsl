// moe_down_union.wgsl — the down half of the experts by expert (batched decode), after moe_gateup_union.wgsl: each
// selected expert's down rows read once per dispatch for all the tokens that chose it, each (token, slot) output
// kept apart for moe_combine.wgsl (which sums the slots in a fixed order and adds the residual):
//   for every pair (t, k), k < K, with ids[t, k] = e in the shard:   y[t, k, d] = Dn_e[d] · h[t, k, :F]
//   doShared:                                                        y[t, K, d] = DnS[d] · h[t, K, :Fs]
// h already carries the combine weight. A workgroup owns one expert (grid y as moe_gateup_union.wgsl) and WG of
// its output rows; groups of up to 4 tokens as there (union_tokens.wgsl, rowdot4.wgsl): batch invariant.
// A kernel family: moe_down_union (FP8), _bf16, _int4.
//
// Bindings (group 0): those of moe_down_id_wide.wgsl (down_wide_io.wgsl), `out` holding the per-slot outputs:
//   0  xin       array<f32>  [T, Ks, Fmax]          h
//   1  ids       array<u32>  [T, K]
//   2  codes     array<CW>   stack [e1-e0, D, rsF / CWORDS]  down_proj of the shard's experts, padded rows
//   3  scales    array<f32>  stack [e1-e0, smat(D, scF)]   (any 16 bytes for BF16)
//   4  shCodes   array<CW>   [D, rsFs / CWORDS]      shared expert down_proj (any 16 bytes when Fs = 0)
//   5  shScales  array<f32>  [smat(D, scFs)]
//   6  out       array<f32>  [T, Ks, D]             y: written at the pairs of the dispatch's experts
//   7  params    uniform     Params (down_params.wgsl; T is one past the last token, `accumulate` unused)
// Workgroup: WG threads (override, default 64), one output row d each, no barriers.
// Dispatch: (⌈D / WG⌉, (e1 - e0) + doShared): tokens t0 .. T - 1.
// CPU counterpart: model/reference.ts moe (down_e(…) per selected expert and the shared one).
// #formats fp8 bf16 int4

override WG: u32 = 64u;

// #include "down_wide_io.wgsl"
// #include "format.wgsl"
// #include "wide_rows.wgsl"
// #include "rowdot4.wgsl"
// #include "union_tokens.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let d = gid.x;
  if (d >= p.D) { return; }
  let isShared = wid.y == p.e1 - p.e0; // the grid's last row when doShared
  let e = p.e0 + wid.y;
  let m = e - p.e0;
  var s = select(p.t0 * p.K, p.t0, isShared);
  loop {
    let grp = nextGroup(e, isShared, &s, p.T);
    if (grp.n == 0u) { break; }
    let slot = grp.t * p.Ks + grp.k;
    var r: vec4<f32>;
    if (isShared) {
      r = dot4_shared(d * (p.rsFs / CWORDS), srow(d, p.scFs), slot * p.Fmax, p.Fs, grp.n);
    } else {
      r = dot4_routed((m * p.D + d) * (p.rsF / CWORDS), m * smat(p.D, p.scF) + srow(d, p.scF), slot * p.Fmax, p.F, grp.n);
    }
    let yo = slot * p.D + d;
    for (var j = 0u; j < grp.n; j++) { out[yo[j]] = r[j]; }
  }
}
