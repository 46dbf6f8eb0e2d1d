// moe_down_tiled.wgsl — tiled grouped GEMM, second half of the experts for prefill: the same contract as
// moe_down_grouped.wgsl (bindings, Params, plan, outputs),
//   y[p, d] = Dn_e[d] · h[p, :Fe]     for the pairs p of one block of expert e (moe_align.wgsl)
// computed the way shaders/include/grouped_tiled.wgsl describes: each invocation owns 4 output rows d .. d+3 of the
// block's expert against TT = 4·TQ of the block's pairs, whose h rows are staged in workgroup memory 128 columns at
// a time. h already carries the combine weight; moe_combine.wgsl sums y over the slots of each token.
//
// A kernel family: moe_down_tiled (FP8), _bf16, _int4 (the weight format from shaders/include/format_*.wgsl).
//
// Bindings (group 0), the same for every format and as moe_down_grouped but the codes viewed as chunks CW:
//   0  xin       array<f32>  [T, Ks, Fmax]  h
//   1  plan      array<u32>  blockExpert [pb] then BM pair ids per block
//   2  codes     array<CW>   stack [e1-e0, D, rsF / CWORDS] down_proj of the shard's experts, padded rows
//   3  scales    array<f32>  stack [e1-e0, smat(D, scF)]   (any 16 bytes for BF16)
//   4  shCodes   array<CW>   [D, rsFs / CWORDS] shared expert down_proj (any 16 bytes when Fs = 0)
//   5  shScales  array<f32>  [smat(D, scFs)]
//   6  y         array<f32>  [T, Ks, D] written (rows of this block's pairs)
//   7  params    uniform     Params (include/grouped.wgsl, one layout for the grouped and tiled kernels)
// Workgroup: WG invocations (override, default 64) x 4 rows, TT = 4·TQ pairs (override TQ: 1, 2, 4), 2 barriers
// per 128 columns. Dispatch: indirect (blocks, ⌈D / (4·WG)⌉ · 16 / TT, 1) written by moe_align.wgsl (tilesDown).
// CPU counterpart: model/reference.ts moe (down_proj of each selected expert).
// #formats fp8 bf16 int4

// #include "format.wgsl"

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
@group(0) @binding(2) var<storage, read> codes: array<CW>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read> shCodes: array<CW>;
@group(0) @binding(5) var<storage, read> shScales: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;
// #include "grouped.wgsl"
// #include "grouped_tiled.wgsl"

// where the h row of pair pr starts
fn slot_x(pr: u32) -> u32 { return pr * p.Fmax; }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let bp = block_part(wid, lid, WG * RT);
  let ps = bp.ps;
  let nv = bp.nv;
  let dt = bp.row0;
  if (nv == 0u || dt >= p.D) { return; }
  let e = bp.e;
  let isShared = bp.isShared;
  let Fe = select(p.F, p.Fs, isShared);
  let rs = select(p.rsF, p.rsFs, isShared);
  let sc = select(p.scF, p.scFs, isShared);

  let d0 = dt + lid * RT;
  let last = vec4<u32>(p.D - 1u); // rows past D read the last row and are not written
  var m = 0u;
  if (!isShared) { m = e - p.e0; }
  let rc = rs / CWORDS; // chunks per row (rows are padded to 16 bytes)
  let mw = vec4<u32>(m * p.D * rc);
  let ms = m * smat(p.D, sc);
  let dr = min(vec4<u32>(d0, d0 + 1u, d0 + 2u, d0 + 3u), last);
  let dr2 = min(vec4<u32>(d0 + 4u, d0 + 5u, d0 + 6u, d0 + 7u), last);
  let sb = vec4<u32>(ms + srow(dr.x, sc), ms + srow(dr.y, sc), ms + srow(dr.z, sc), ms + srow(dr.w, sc));
  let sb2 = vec4<u32>(ms + srow(dr2.x, sc), ms + srow(dr2.y, sc), ms + srow(dr2.z, sc), ms + srow(dr2.w, sc));
  var t: Tile;
  if (isShared) { t = tile_shared(mw + dr * rc, mw + dr2 * rc, sb, sb2, Fe, ps, nv, lid); }
  else { t = tile_routed(mw + dr * rc, mw + dr2 * rc, sb, sb2, Fe, ps, nv, lid); }

  for (var s = 0u; s < nv; s++) {
    let a = quad_of(t, s / 4u);
    let o = plan[ps + s] * p.D + d0;
    let j = s % 4u;
    if (d0 < p.D) { y[o] = a.r0[j]; }
    if (d0 + 1u < p.D) { y[o + 1u] = a.r1[j]; }
    if (d0 + 2u < p.D) { y[o + 2u] = a.r2[j]; }
    if (d0 + 3u < p.D) { y[o + 3u] = a.r3[j]; }
    if (RT > 4u) {
      if (d0 + 4u < p.D) { y[o + 4u] = a.r4[j]; }
      if (d0 + 5u < p.D) { y[o + 5u] = a.r5[j]; }
      if (d0 + 6u < p.D) { y[o + 6u] = a.r6[j]; }
      if (d0 + 7u < p.D) { y[o + 7u] = a.r7[j]; }
    }
  }
}
