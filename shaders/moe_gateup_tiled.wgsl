// moe_gateup_tiled.wgsl — tiled grouped GEMM, first half of the experts for prefill: the same contract as
// moe_gateup_grouped.wgsl (bindings, Params, plan, outputs),
//   h[p, f] = w_p · silu(G_e[f] · x_t) · (U_e[f] · x_t),  p = t·Ks + k (w = 1 for the shared slot k = K)
// computed the way shaders/include/grouped_tiled.wgsl describes: each invocation owns 2 rows f, f+1 of the block's
// expert, that is 4 weight rows (gate f, gate f+1, up f, up f+1), against TT = 4·TQ of the block's pairs, whose x
// rows are staged in workgroup memory 128 columns at a time.
//
// A kernel family: moe_gateup_tiled (FP8), _bf16, _int4 (the weight format from shaders/include/format_*.wgsl).
//
// Bindings (group 0), the same for every format and as moe_gateup_grouped but the codes viewed as chunks CW:
//   0  xin       array<f32>  [T, D]
//   1  plan      array<u32>  blockExpert [pb] then BM pair ids per block (moe_align.wgsl)
//   2  wts       array<f32>  [T, K] combine weights
//   3  codes     array<CW>   stack [2·(e1-e0), F, rsD / CWORDS] gate_e, up_e of the shard's experts, padded rows
//   4  scales    array<f32>  stack [2·(e1-e0), smat(F, scD)]   (any 16 bytes for BF16)
//   5  shCodes   array<CW>   stack [2, Fs, rsD / CWORDS] shared expert (any 16 bytes when Fs = 0)
//   6  shScales  array<f32>  stack [2, smat(Fs, scD)]
//   7  h         array<f32>  [T, Ks, Fmax] written (rows of this block's pairs)
//   8  params    uniform     Params (include/grouped.wgsl, one layout for the grouped and tiled kernels)
// Workgroup: WG invocations (override, default 64) x 2 rows, TT = 4·TQ pairs (override TQ: 1, 2, 4), 2 barriers
// per 128 columns. Dispatch: indirect (blocks, ⌈Fmax / (2·WG)⌉ · 16 / TT, 1) written by moe_align.wgsl (its
// tilesGU); blocks outside the shard (or the shared expert when doShared = 0), parts past a block's pairs and row
// tiles past the expert's width exit at once (whole workgroups).
// CPU counterpart: model/reference.ts moe (silu(gate·x) ⊙ up·x, × the combine weight).
// #formats fp8 bf16 int4

// #include "format.wgsl"

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
// #include "gateup_chunk_bindings.wgsl"
// #include "grouped.wgsl"
// #include "grouped_tiled.wgsl"
// #include "silu_store.wgsl"

// where the x row of pair pr = t·Ks + k starts
fn slot_x(pr: u32) -> u32 { return (pr / p.Ks) * p.D; }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let hr = RT / 2u; // rows f per invocation (each a gate row and an up row)
  let bp = block_part(wid, lid, WG * hr);
  let ps = bp.ps;
  let nv = bp.nv;
  let ft = bp.row0;
  let e = bp.e;
  let isShared = bp.isShared;
  let Fe = select(p.F, p.Fs, isShared);
  if (nv == 0u || ft >= Fe) { return; }

  let f0 = ft + lid * hr;
  let last = Fe - 1u;             // rows past Fe read the last row and are not written
  let fr = min(vec4<u32>(f0, f0 + 1u, f0 + 2u, f0 + 3u), vec4<u32>(last));
  let rc = p.rsD / CWORDS;        // chunks per row (rows are padded to 16 bytes)
  let mw = Fe * rc;               // chunks per matrix
  let ms = smat(Fe, p.scD);       // scales per matrix
  var m = 0u;
  if (!isShared) { m = 2u * (e - p.e0); }
  let gs = vec4<u32>(m * ms + srow(fr.x, p.scD), m * ms + srow(fr.y, p.scD), m * ms + srow(fr.z, p.scD), m * ms + srow(fr.w, p.scD));
  let g = vec4<u32>(m * mw) + fr * rc;
  // RT 4: rows (gate f0, gate f0+1, up f0, up f0+1); RT 8: (gate f0 .. f0+3), then (up f0 .. f0+3)
  var rb = vec4<u32>(g.x, g.y, g.x + mw, g.y + mw);
  var sb = vec4<u32>(gs.x, gs.y, gs.x + ms, gs.y + ms);
  var rb2 = rb;
  var sb2 = sb;
  if (RT > 4u) {
    rb = g;
    sb = gs;
    rb2 = g + vec4<u32>(mw);
    sb2 = gs + vec4<u32>(ms);
  }
  var t: Tile;
  if (isShared) { t = tile_shared(rb, rb2, sb, sb2, p.D, ps, nv, lid); } else { t = tile_routed(rb, rb2, sb, sb2, p.D, ps, nv, lid); }

  for (var s = 0u; s < nv; s++) {
    let a = quad_of(t, s / 4u);
    let pr = plan[ps + s];
    let j = s % 4u;
    if (RT > 4u) {
      if (f0 < Fe) { store(pr, f0, a.r0[j], a.r4[j]); }
      if (f0 + 1u < Fe) { store(pr, f0 + 1u, a.r1[j], a.r5[j]); }
      if (f0 + 2u < Fe) { store(pr, f0 + 2u, a.r2[j], a.r6[j]); }
      if (f0 + 3u < Fe) { store(pr, f0 + 3u, a.r3[j], a.r7[j]); }
    } else {
      if (f0 < Fe) { store(pr, f0, a.r0[j], a.r2[j]); }
      if (f0 + 1u < Fe) { store(pr, f0 + 1u, a.r1[j], a.r3[j]); }
    }
  }
}
