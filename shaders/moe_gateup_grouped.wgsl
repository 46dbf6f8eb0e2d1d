// moe_gateup_grouped.wgsl — grouped GEMM, first half of the experts for prefill (docs/kernels.md §3.4-3.5):
// every workgroup owns one block of BM (token, slot) pairs that all use the same expert (moe_align.wgsl) and
// WG of that expert's rows, so the expert's gate/up rows are read once per block instead of once per token:
//   h[p, f] = w_p · silu(G_e[f] · x_t) · (U_e[f] · x_t),  p = t·Ks + k (w = 1 for the shared slot k = K)
// Thread = one row f × the block's pairs, 4 at a time (then the 0-3 left one at a time): each u32 word of codes
// is decoded (× its scale: the exact f32 weights of the reference) and used for 4 tokens from registers; the x reads are the same address for every thread (broadcast). No workgroup memory and no barriers: the shape that runs well
// on CPU adapters (docs/kernels.md §3.4, as fp8_gemm.wgsl).
//
// A kernel family: moe_gateup_grouped (FP8), _bf16, _int4 (the weight format from shaders/include/format_*.wgsl).
//
// Bindings (group 0), the same for every format:
//   0  xin       array<f32>  [T, D]
//   1  plan      array<u32>  blockExpert [pb] then BM pair ids per block (moe_align.wgsl)
//   2  wts       array<f32>  [T, K] combine weights
//   3  codes     array<u32>  stack [2·(e1-e0), F, rsD] gate_e, up_e of the shard's experts, padded rows
//   4  scales    array<f32>  stack [2·(e1-e0), smat(F, scD)]   (any 16 bytes for BF16)
//   5  shCodes   array<u32>  stack [2, Fs, rsD] shared expert (any 16 bytes when Fs = 0)
//   6  shScales  array<f32>  stack [2, smat(Fs, scD)]
//   7  h         array<f32>  [T, Ks, Fmax] written (rows of this block's pairs)
//   8  params    uniform     Params (include/grouped.wgsl, one layout for both grouped kernels)
// Workgroup: WG = 64 threads (one row each), BM = 16 pairs. Dispatch: indirect (blocks, ⌈Fmax / 64⌉, 1)
// written by moe_align.wgsl; blocks of experts outside the shard [e0, e1) (or the shared expert when
// doShared = 0) and rows past the expert's width exit at once.
// CPU counterpart: model/reference.ts moe (silu(gate·x) ⊙ up·x, × the combine weight).
// #formats fp8 bf16 int4

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
// #include "gateup_bindings.wgsl"

// #include "format.wgsl"
// #include "grouped.wgsl"

const WG: u32 = 64u;

struct GU4 {
  g: vec4<f32>,
  u: vec4<f32>,
}

// #each SUF W: routed codes; shared shCodes
// gate and up dots of one weight row pair with 4 x rows (offsets o); the buffer choice stays outside the word
// loop (SwiftShader ran 2x slower with the routed/shared branch inside it)
fn rows4_$SUF(gRow: u32, uRow: u32, gS: u32, uS: u32, o: vec4<u32>) -> GU4 {
  var r = GU4(vec4<f32>(0.0), vec4<f32>(0.0));
  let words = (p.D + QCOLS - 1u) / QCOLS;
  let bw = SCOLS / QCOLS; // words per scale block
  for (var wi = 0u; wi < words; wi++) {
    let g4 = qvals($W[gRow + wi]) * scale_$SUF(gS + wi / bw);
    let u4 = qvals($W[uRow + wi]) * scale_$SUF(uS + wi / bw);
    let c = wi * QCOLS;
    let x0 = xq(o.x, c, p.D);
    let x1 = xq(o.y, c, p.D);
    let x2 = xq(o.z, c, p.D);
    let x3 = xq(o.w, c, p.D);
    r.g += vec4<f32>(qdot(g4, x0), qdot(g4, x1), qdot(g4, x2), qdot(g4, x3));
    r.u += vec4<f32>(qdot(u4, x0), qdot(u4, x1), qdot(u4, x2), qdot(u4, x3));
  }
  return r;
}

fn row1_$SUF(gRow: u32, uRow: u32, gS: u32, uS: u32, o: u32) -> vec2<f32> {
  var r = vec2<f32>(0.0);
  let words = (p.D + QCOLS - 1u) / QCOLS;
  let bw = SCOLS / QCOLS;
  for (var wi = 0u; wi < words; wi++) {
    let xv = xq(o, wi * QCOLS, p.D);
    r += vec2<f32>(qdot(qvals($W[gRow + wi]), xv) * scale_$SUF(gS + wi / bw),
                   qdot(qvals($W[uRow + wi]), xv) * scale_$SUF(uS + wi / bw));
  }
  return r;
}
// #end

// #include "silu_store.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let b = wid.x;
  let e = plan[b];
  if (!runs(e)) { return; }
  let isShared = e == p.E;
  let Fe = select(p.F, p.Fs, isShared);
  let f = wid.y * WG + lid;
  if (f >= Fe) { return; }

  let pb = p.pb + b * BM;
  let n = pairs(pb);
  let mw = Fe * p.rsD;           // words per matrix
  let ms = smat(Fe, p.scD);      // scales per matrix
  var m = 0u;
  if (!isShared) { m = 2u * (e - p.e0); }
  let gRow = m * mw + f * p.rsD;
  let uRow = gRow + mw;
  let gS = m * ms + srow(f, p.scD);
  let uS = gS + ms;

  // full groups of 4 pairs, then the remaining 0-3 one at a time (no work on padding rows)
  var i0 = 0u;
  for (; i0 + 4u <= n; i0 += 4u) {
    let o = vec4<u32>(plan[pb + i0], plan[pb + i0 + 1u], plan[pb + i0 + 2u], plan[pb + i0 + 3u]) / p.Ks * p.D;
    var r: GU4;
    if (isShared) { r = rows4_shared(gRow, uRow, gS, uS, o); } else { r = rows4_routed(gRow, uRow, gS, uS, o); }
    for (var j = 0u; j < 4u; j++) { store(plan[pb + i0 + j], f, r.g[j], r.u[j]); }
  }
  for (; i0 < n; i0++) {
    let pr = plan[pb + i0];
    let o = (pr / p.Ks) * p.D;
    var r: vec2<f32>;
    if (isShared) { r = row1_shared(gRow, uRow, gS, uS, o); } else { r = row1_routed(gRow, uRow, gS, uS, o); }
    store(pr, f, r.x, r.y);
  }
}
