// moe_down_union.wgsl — the down half of the experts by expert (batched decode), after moe_gateup_union.wgsl: each
// selected expert's down rows read and decoded once per group of up to 4 tokens that chose it, each (token, slot)
// output kept apart for moe_combine.wgsl (which adds the slots in moe_down_id_wide's order, and the residual):
//   for every pair (t, k), k < K, with ids[t, k] = e in the shard:   y[t, k, d] = Dn_e[d] · h[t, k, :F]
//   doShared:                                                        y[t, K, d] = DnS[d] · h[t, K, :Fs]
// h already carries the combine weight. A workgroup owns one expert (grid y as moe_gateup_union.wgsl) and WG · RPT
// of its output rows, RPT consecutive rows per thread (override, 1, 2 or 4) as moe_down_id_wide; groups of up to
// 4 tokens as moe_gateup_union (union_tokens.wgsl): each row chunk decoded once (cdec) and dotted with each token's
// h chunk (cdotd). Per (token, slot) that is exactly moe_down_id_wide's dot of that slot (chunks in order, × the
// block scale per block), so y[t, k] is bit for bit the term moe_down_id_wide adds: batch invariant.
// Rows past D recompute the last row and are not written; h past F (Fs) in a slot's row is masked to 0.
// A kernel family: moe_down_union (FP8; F16BITS as moe_down_id_wide), _bf16, _int4.
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
// Workgroup: WG threads (override, default 64), RPT rows each, no barriers.
// Dispatch: (⌈D / (WG · RPT)⌉, (e1 - e0) + doShared): tokens t0 .. T - 1.
// CPU counterpart: model/reference.ts moe (down_e(…) per selected expert and the shared one).
// #formats fp8 bf16 int4

override WG: u32 = 64u;
override RPT: u32 = 2u;         // rows per invocation: 1, 2 or 4

// #include "down_wide_io.wgsl"
// #include "format.wgsl"
// #include "wide_rows.wgsl"
// #include "union_tokens.wgsl"

// #each SUF W S: routed codes scales; shared shCodes shScales
// chunk k (column c) of the RPT rows at b (+ o), decoded once, against the group's n h rows at xo (cols columns)
fn step4_$SUF(b: u32, o: vec3<u32>, k: u32, c: u32, full: bool, xo: vec4<u32>, cols: u32, n: u32, part: ptr<function, array<vec4<f32>, 4>>) {
  let d0 = cdec($W[b + k]);
  var d1 = d0; var d2 = d0; var d3 = d0;
  if (RPT > 1u) { d1 = cdec($W[b + o.x + k]); }
  if (RPT > 2u) {
    d2 = cdec($W[b + o.y + k]);
    d3 = cdec($W[b + o.z + k]);
  }
  for (var i = 0u; i < 4u; i++) {
    if (i >= n) { break; }
    var x: XC;
    if (full) { x = xc_full(xo[i] + c); } else { x = xc_tail(xo[i], c, cols); }
    (*part)[i].x += cdotd(d0, x);
    if (RPT > 1u) { (*part)[i].y += cdotd(d1, x); }
    if (RPT > 2u) {
      (*part)[i].z += cdotd(d2, x);
      (*part)[i].w += cdotd(d3, x);
    }
  }
}

// s: the first row's scale row, so: the other rows' scale-row offsets
fn dot4_$SUF(b: u32, s: u32, o: vec3<u32>, so: vec3<u32>, xo: vec4<u32>, cols: u32, n: u32) -> array<vec4<f32>, 4> {
  let ch = chunks(cols);
  var acc = array<vec4<f32>, 4>();
  for (var k0 = 0u; k0 < ch.y; k0 += ch.z) {
    let kend = min(k0 + ch.z, ch.x);
    var part = array<vec4<f32>, 4>(); // explicitly zeroed per block (see fp8_gemv_wide.wgsl)
    for (var k = k0; k < kend; k++) {
      step4_$SUF(b, o, k, CCOLS * k, true, xo, cols, n, &part);
    }
    if (kend < min(k0 + ch.z, ch.y)) {
      // the last, partial chunk (always in the last block): h masked to 0 past cols
      step4_$SUF(b, o, ch.x, CCOLS * ch.x, false, xo, cols, n, &part);
    }
    let kb = k0 / ch.z;
    for (var i = 0u; i < 4u; i++) {
      if (i >= n) { break; }
      if (HAS_SCALES) {
        acc[i] += part[i] * (vec4<f32>($S[s + kb], $S[s + so.x + kb], $S[s + so.y + kb], $S[s + so.z + kb]) * cmul());
      } else {
        acc[i] += part[i];
      }
    }
  }
  return acc;
}
// #end

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let d0 = gid.x * RPT;
  if (d0 >= p.D) { return; }
  let isShared = wid.y == p.e1 - p.e0; // the grid's last row when doShared
  let e = p.e0 + wid.y;
  let nr = p.D - d0; // valid rows from d0
  let rsv = select(p.rsF, p.rsFs, isShared) / CWORDS; // chunks per row
  let sc = select(p.scF, p.scFs, isShared);
  let cols = select(p.F, p.Fs, isShared);
  let o = rowOffsets(nr, rsv);
  let so = scaleRowOffsets(d0, nr, sc);
  let m = e - p.e0;
  let b = select(m * p.D * rsv, 0u, isShared) + d0 * rsv;
  let s0 = select(m * smat(p.D, sc), 0u, isShared) + srow(d0, sc);
  var s = select(p.t0 * p.K, p.t0, isShared);
  loop {
    let grp = nextGroup(e, isShared, &s, p.T);
    if (grp.n == 0u) { break; }
    let slot = grp.t * p.Ks + grp.k;
    var r: array<vec4<f32>, 4>;
    if (isShared) {
      r = dot4_shared(b, s0, o, so, slot * p.Fmax, cols, grp.n);
    } else {
      r = dot4_routed(b, s0, o, so, slot * p.Fmax, cols, grp.n);
    }
    for (var i = 0u; i < 4u; i++) {
      if (i >= grp.n) { break; }
      let yo = slot[i] * p.D + d0;
      out[yo] = r[i].x;
      if (RPT > 1u && nr > 1u) { out[yo + 1u] = r[i].y; }
      if (RPT > 2u && nr > 2u) { out[yo + 2u] = r[i].z; }
      if (RPT > 3u && nr > 3u) { out[yo + 3u] = r[i].w; }
    }
  }
}
