// moe_down_grouped.wgsl — grouped GEMM, second half of the experts for prefill (docs/kernels.md §3.4-3.5):
//   y[p, d] = Dn_e[d] · h[p, :Fe]     for the BM pairs p of one block of expert e (moe_align.wgsl)
// h already carries the combine weight; moe_combine.wgsl sums y over the slots of each token. Thread = one
// output row d × the block's pairs, 4 at a time (then the 0-3 left one at a time): each word of codes is
// decoded (× its scale) and used for 4 pairs from registers; no workgroup memory, no barriers (as
// moe_gateup_grouped.wgsl).
//
// A kernel family: moe_down_grouped (FP8), _bf16, _int4 (the weight format from shaders/include/format_*.wgsl).
//
// Bindings (group 0), the same for every format:
//   0  xin       array<f32>  [T, Ks, Fmax]  h
//   1  plan      array<u32>  blockExpert [pb] then BM pair ids per block
//   2  codes     array<u32>  stack [e1-e0, D, rsF] down_proj of the shard's experts, padded rows
//   3  scales    array<f32>  stack [e1-e0, smat(D, scF)]   (any 16 bytes for BF16)
//   4  shCodes   array<u32>  [D, rsFs] shared expert down_proj (any 16 bytes when Fs = 0)
//   5  shScales  array<f32>  [smat(D, scFs)]
//   6  y         array<f32>  [T, Ks, D] written (rows of this block's pairs)
//   7  params    uniform     Params (include/grouped.wgsl, one layout for both grouped kernels)
// Workgroup: WG = 64 threads (one row each), BM = 16 pairs. Dispatch: indirect (blocks, ⌈D / 64⌉, 1)
// written by moe_align.wgsl.
// CPU counterpart: model/reference.ts moe (down_proj of each selected expert).
// #formats fp8 bf16 int4

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
@group(0) @binding(2) var<storage, read> codes: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read> shCodes: array<u32>;
@group(0) @binding(5) var<storage, read> shScales: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

// #include "format.wgsl"
// #include "grouped.wgsl"

const WG: u32 = 64u;

// #each SUF W: routed codes; shared shCodes
// dots of one weight row with 4 (or 1) h rows at offsets o; the buffer choice stays outside the word loop
// (SwiftShader ran 2x slower with the routed/shared branch inside it)
fn rows4_$SUF(row: u32, sr: u32, o: vec4<u32>, n: u32) -> vec4<f32> {
  var acc = vec4<f32>(0.0);
  let bw = SCOLS / QCOLS; // words per scale block
  for (var wi = 0u; wi < (n + QCOLS - 1u) / QCOLS; wi++) {
    let w4 = qvals($W[row + wi]) * scale_$SUF(sr + wi / bw);
    let c = wi * QCOLS;
    acc += vec4<f32>(qdot(w4, xq(o.x, c, n)), qdot(w4, xq(o.y, c, n)), qdot(w4, xq(o.z, c, n)), qdot(w4, xq(o.w, c, n)));
  }
  return acc;
}

fn row1_$SUF(row: u32, sr: u32, o: u32, n: u32) -> f32 {
  var acc = 0.0;
  let bw = SCOLS / QCOLS;
  for (var wi = 0u; wi < (n + QCOLS - 1u) / QCOLS; wi++) {
    acc += qdot(qvals($W[row + wi]), xq(o, wi * QCOLS, n)) * scale_$SUF(sr + wi / bw);
  }
  return acc;
}
// #end

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let b = wid.x;
  let e = plan[b];
  if (!runs(e)) { return; }
  let isShared = e == p.E;
  let d = wid.y * WG + lid;
  if (d >= p.D) { return; }
  let Fe = select(p.F, p.Fs, isShared);
  let rs = select(p.rsF, p.rsFs, isShared);
  let sc = select(p.scF, p.scFs, isShared);

  let pb = p.pb + b * BM;
  let n = pairs(pb);
  var m = 0u;
  if (!isShared) { m = e - p.e0; }
  let row = m * p.D * rs + d * rs;                 // matrix m, row d
  let sr = m * smat(p.D, sc) + srow(d, sc);

  // full groups of 4 pairs, then the remaining 0-3 one at a time (no work on padding rows)
  var i0 = 0u;
  for (; i0 + 4u <= n; i0 += 4u) {
    let o = vec4<u32>(plan[pb + i0], plan[pb + i0 + 1u], plan[pb + i0 + 2u], plan[pb + i0 + 3u]) * p.Fmax;
    var acc: vec4<f32>;
    if (isShared) { acc = rows4_shared(row, sr, o, Fe); } else { acc = rows4_routed(row, sr, o, Fe); }
    for (var j = 0u; j < 4u; j++) { y[plan[pb + i0 + j] * p.D + d] = acc[j]; }
  }
  for (; i0 < n; i0++) {
    let pr = plan[pb + i0];
    var acc: f32;
    if (isShared) { acc = row1_shared(row, sr, pr * p.Fmax, Fe); } else { acc = row1_routed(row, sr, pr * p.Fmax, Fe); }
    y[pr * p.D + d] = acc;
  }
}
