// moe_gateup_union.wgsl — the gate/up half of the experts by expert (batched decode): the result of
// moe_gateup_id.wgsl for the tokens t0 .. T - 1, with each selected expert's rows read once per dispatch for all the
// tokens that chose it instead of once per (token, slot):
//   for every pair (t, k), k < K, with ids[t, k] = e in the shard:
//     h[t, k, f] = w[t, k] · silu(G_e[f] · x_t) · (U_e[f] · x_t)                          f < F
//   doShared: the shared expert (weight 1) into slot K of every token, f < Fs
// A workgroup owns one expert (grid y: the shard's experts e0 .. e1 - 1, then the shared expert when doShared) and
// WG of its rows (a gate row and an up row per thread); every thread scans ids for the pairs that chose the expert
// (union_tokens.wgsl) and runs them in groups of up to 4, each weight chunk loaded (a CW, as the wide kernels) and
// each word decoded once per group (rowdot4.wgsl). A token's sums do not depend on the other tokens of its group or step: batch invariant.
// A kernel family: moe_gateup_union (FP8), _bf16, _int4 (the weight format from shaders/include/format_*.wgsl).
//
// Bindings (group 0): those of moe_gateup_id_wide.wgsl (gateup_wide_io.wgsl), codes as chunks CW of the format:
//   0  xin       array<f32>  [T, D]
//   1  ids       array<u32>  [T, K]
//   2  wts       array<f32>  [T, K]
//   3  codes     array<CW>   stack [2·(e1-e0), F, rsD / CWORDS]   gate_e, up_e of the shard's experts
//   4  scales    array<f32>  stack [2·(e1-e0), smat(F, scD)]   (any 16 bytes for BF16)
//   5  shCodes   array<CW>   stack [2, Fs, rsD / CWORDS]     shared expert gate, up (any 16 bytes when Fs = 0)
//   6  shScales  array<f32>  stack [2, smat(Fs, scD)]
//   7  h         array<f32>  [T, Ks, Fmax]               written at the pairs of the dispatch's experts
//   8  params    uniform     Params (gateup_params.wgsl; here T is one past the last token of the dispatch)
// Workgroup: WG threads (override, default 64), one row f each, no barriers.
// Dispatch: (⌈Fmax / WG⌉, (e1 - e0) + doShared): tokens t0 .. T - 1.
// CPU counterpart: model/reference.ts moe (silu(gate·x) ⊙ up·x per selected expert, × its weight).
// #formats fp8 bf16 int4

override WG: u32 = 64u;

// #include "gateup_wide_io.wgsl"
// #include "format.wgsl"
// #include "wide_rows.wgsl"
// #include "rowdot4.wgsl"
// #include "union_tokens.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let f = gid.x;
  let isShared = wid.y == p.e1 - p.e0; // the grid's last row when doShared
  let e = p.e0 + wid.y;
  if (f >= select(p.F, p.Fs, isShared)) { return; }
  let rsv = p.rsD / CWORDS; // chunks per row
  let mw = select(p.F, p.Fs, isShared) * rsv; // chunks per matrix
  let ms = smat(select(p.F, p.Fs, isShared), p.scD);
  let m = select(2u * (e - p.e0), 0u, isShared); // gate matrix of the stack; up is m + 1
  let gb = m * mw + f * rsv;
  let gs = m * ms + srow(f, p.scD);
  var s = select(p.t0 * p.K, p.t0, isShared);
  loop {
    let grp = nextGroup(e, isShared, &s, p.T);
    if (grp.n == 0u) { break; }
    let xo = grp.t * p.D;
    var g: vec4<f32>;
    var u: vec4<f32>;
    var wt = vec4<f32>(1.0);
    if (isShared) {
      g = dot4_shared(gb, gs, xo, p.D, grp.n);
      u = dot4_shared(gb + mw, gs + ms, xo, p.D, grp.n);
    } else {
      g = dot4_routed(gb, gs, xo, p.D, grp.n);
      u = dot4_routed(gb + mw, gs + ms, xo, p.D, grp.n);
      let wi = grp.t * p.K + grp.k;
      wt = vec4<f32>(wts[wi.x], wts[wi.y], wts[wi.z], wts[wi.w]);
    }
    let hv = wt * (g / (vec4<f32>(1.0) + exp(-g))) * u;
    let ho = (grp.t * p.Ks + grp.k) * p.Fmax + f;
    for (var j = 0u; j < grp.n; j++) { h[ho[j]] = hv[j]; }
  }
}
