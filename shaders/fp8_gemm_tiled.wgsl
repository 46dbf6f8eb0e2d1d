// fp8_gemm_tiled.wgsl — block-FP8 matrix-matrix product for prefill (T tokens), register-blocked and tiled
// through workgroup memory:
//   y[yOffset + t·yStride + rowStart + r] (+)= Σ_c (e4m3(W[r, c]) · scale[(rowStart + r) / 128, c / 128])
//                                                 · x[xOffset + t·xStride + c]
// Same contract as fp8_gemm.wgsl. A workgroup owns WG·RT rows x TT = 4·TQ tokens; each invocation a register
// tile of RT rows x TT tokens (vec4 accumulators in a struct with named fields: lavapipe spills dynamically
// indexed private arrays). Per 128-column block (one scale block, KC columns):
//   1. the workgroup stages the x tile [TT tokens, 128 columns] in workgroup memory (columns past `cols` as 0), as
//      one vec4 per 4 columns of a token, so one load feeds a word of codes (1.2-1.6x the scalar layout on
//      lavapipe, interleaved runs against the previous commit; docs/benchmarks.md "Prefill GEMM");
//   2. each invocation loads one vec4<u32> of codes per row per 16 columns (16 codes), decodes each code once
//      (F16BITS: two codes per op through f16 bit patterns + unpack2x16float, docs/kernels.md §3.1 (B)) and multiplies
//      it by its row's block scale, so every decoded weight equals dequantizeFp8Block's f32 value exactly;
//   3. and reuses it from registers for the TT tokens: one explicit fma per (row, token, column), the x values
//      read from workgroup memory at workgroup-uniform addresses.
// Why x goes through workgroup memory (measured on lavapipe, docs/benchmarks.md "Prefill GEMM"): reading x from
// the storage buffer at uniform addresses costs a bounds-checked scalar load per element, which dominated (the
// time fell with rows per invocation and not with tokens); workgroup memory has no bounds checks. Two barriers
// per 128 columns. Each output sums its columns in order with f32 fma (the weights of a row are decoded by one
// invocation, so the order does not depend on T or on the tile).
//
// Bindings (group 0):
//   0  w       array<vec4<u32>> [rows, stride / 4]   FP8 codes of one row chunk; stride (u32 words) a multiple of
//                                                    4, bytes past `cols` in a row are 0 (padded at upload)
//   1  scale   array<f32>  [⌈R/128⌉, scaleCols]      block scales of the whole tensor (R = all rows)
//   2  x       array<f32>  [T, xStride] at xOffset   inputs (cols used per token)
//   3  y       array<f32>  [T, yStride] at yOffset   outputs; chunk row r is column rowStart + r
//   4  params  uniform     Params (include/linear.wgsl; stride a multiple of 4)
// Workgroup: WG invocations (override) along rows, RT consecutive rows each (override, 1..8), TT = 4·TQ tokens
// each (override TQ, 1..4), all sharing the workgroup's tokens. Dispatch: (⌈rows / (WG·RT)⌉, ⌈T / TT⌉).
// CPU counterpart: src/model/reference.ts linear on dequantizeFp8Block(W) (src/format/fp8.ts).

override WG: u32 = 64u;
override RT: u32 = 4u;         // rows per invocation, 1..8 (the register tile: RT x 4·TQ accumulators)
override TQ: u32 = 2u;         // token quads per invocation, 1..4 (TT = 4·TQ tokens)
override F16BITS: bool = true; // decode via unpack2x16float (true) or the f32 bit trick (false)
const KC: u32 = 128u;          // columns per stage: one scale block

// #include "linear.wgsl"

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// the x tile: token slot s (0..15), columns 4j .. 4j+3 of the block at s·KW + j (one vec4 load feeds a word)
const KW: u32 = KC / 4u;
var<workgroup> xs: array<vec4<f32>, 512>;

// E4M3FN code (low 8 bits of b) -> f32, exact (docs/kernels.md §3.1 (A))
// #include "e4m3.wgsl"

// the 4 codes of q in column order; F16BITS: each value / 256 (the caller folds 256 into the scale)
fn dec(q: u32) -> vec4<f32> {
  if (F16BITS) {
    let ev = unpack2x16float(((q << 7u) & 0x3F803F80u) | ((q << 8u) & 0x80008000u)); // codes 0, 2
    let od = unpack2x16float(((q >> 1u) & 0x3F803F80u) | (q & 0x80008000u));        // codes 1, 3
    return vec4<f32>(ev.x, od.x, ev.y, od.y);
  }
  return vec4<f32>(e4m3(q), e4m3(q >> 8u), e4m3(q >> 16u), e4m3(q >> 24u));
}

// the register tile: a{row}{quad}, 4 tokens each (named fields, never a dynamically indexed array)
struct Acc {
  a00: vec4<f32>, a01: vec4<f32>, a02: vec4<f32>, a03: vec4<f32>,
  a10: vec4<f32>, a11: vec4<f32>, a12: vec4<f32>, a13: vec4<f32>,
  a20: vec4<f32>, a21: vec4<f32>, a22: vec4<f32>, a23: vec4<f32>,
  a30: vec4<f32>, a31: vec4<f32>, a32: vec4<f32>, a33: vec4<f32>,
  a40: vec4<f32>, a41: vec4<f32>, a42: vec4<f32>, a43: vec4<f32>,
  a50: vec4<f32>, a51: vec4<f32>, a52: vec4<f32>, a53: vec4<f32>,
  a60: vec4<f32>, a61: vec4<f32>, a62: vec4<f32>, a63: vec4<f32>,
  a70: vec4<f32>, a71: vec4<f32>, a72: vec4<f32>, a73: vec4<f32>,
}

// the x values of token slots s .. s+3 at the 4 columns c .. c+3 of the stage: column j's 4 tokens in X[j]
fn xcols(s: u32, c: u32) -> mat4x4<f32> {
  return transpose(mat4x4<f32>(xs[s * KW + c / 4u], xs[(s + 1u) * KW + c / 4u], xs[(s + 2u) * KW + c / 4u], xs[(s + 3u) * KW + c / 4u]));
}

// the decoded, scaled weights of one u32 word (4 columns) of each of the RT rows
struct Wq {
  w0: vec4<f32>,
  w1: vec4<f32>,
  w2: vec4<f32>,
  w3: vec4<f32>,
  w4: vec4<f32>,
  w5: vec4<f32>,
  w6: vec4<f32>,
  w7: vec4<f32>,
}

// one u32 word (4 columns from block column c) of each of the RT rows against the tile's tokens: per column,
// one explicit fma per (row, token) — a mul + add pair would issue twice the instructions of the FMA ceiling's
// fma (bench_fma.wgsl) — with the decoded weight per lane and 4 tokens' x at that column
fn word(acc: ptr<function, Acc>, wv: ptr<function, Wq>, c: u32) {
  {
    let X = xcols(0u, c);
    let x0 = X[0];
    let x1 = X[1];
    let x2 = X[2];
    let x3 = X[3];
    { (*acc).a00 = fma(vec4<f32>((*wv).w0.w), x3, fma(vec4<f32>((*wv).w0.z), x2, fma(vec4<f32>((*wv).w0.y), x1, fma(vec4<f32>((*wv).w0.x), x0, (*acc).a00)))); }
    if (RT > 1u) { (*acc).a10 = fma(vec4<f32>((*wv).w1.w), x3, fma(vec4<f32>((*wv).w1.z), x2, fma(vec4<f32>((*wv).w1.y), x1, fma(vec4<f32>((*wv).w1.x), x0, (*acc).a10)))); }
    if (RT > 2u) { (*acc).a20 = fma(vec4<f32>((*wv).w2.w), x3, fma(vec4<f32>((*wv).w2.z), x2, fma(vec4<f32>((*wv).w2.y), x1, fma(vec4<f32>((*wv).w2.x), x0, (*acc).a20)))); }
    if (RT > 3u) { (*acc).a30 = fma(vec4<f32>((*wv).w3.w), x3, fma(vec4<f32>((*wv).w3.z), x2, fma(vec4<f32>((*wv).w3.y), x1, fma(vec4<f32>((*wv).w3.x), x0, (*acc).a30)))); }
    if (RT > 4u) { (*acc).a40 = fma(vec4<f32>((*wv).w4.w), x3, fma(vec4<f32>((*wv).w4.z), x2, fma(vec4<f32>((*wv).w4.y), x1, fma(vec4<f32>((*wv).w4.x), x0, (*acc).a40)))); }
    if (RT > 5u) { (*acc).a50 = fma(vec4<f32>((*wv).w5.w), x3, fma(vec4<f32>((*wv).w5.z), x2, fma(vec4<f32>((*wv).w5.y), x1, fma(vec4<f32>((*wv).w5.x), x0, (*acc).a50)))); }
    if (RT > 6u) { (*acc).a60 = fma(vec4<f32>((*wv).w6.w), x3, fma(vec4<f32>((*wv).w6.z), x2, fma(vec4<f32>((*wv).w6.y), x1, fma(vec4<f32>((*wv).w6.x), x0, (*acc).a60)))); }
    if (RT > 7u) { (*acc).a70 = fma(vec4<f32>((*wv).w7.w), x3, fma(vec4<f32>((*wv).w7.z), x2, fma(vec4<f32>((*wv).w7.y), x1, fma(vec4<f32>((*wv).w7.x), x0, (*acc).a70)))); }
  }
  if (TQ > 1u) {
    let X = xcols(4u, c);
    let x0 = X[0];
    let x1 = X[1];
    let x2 = X[2];
    let x3 = X[3];
    { (*acc).a01 = fma(vec4<f32>((*wv).w0.w), x3, fma(vec4<f32>((*wv).w0.z), x2, fma(vec4<f32>((*wv).w0.y), x1, fma(vec4<f32>((*wv).w0.x), x0, (*acc).a01)))); }
    if (RT > 1u) { (*acc).a11 = fma(vec4<f32>((*wv).w1.w), x3, fma(vec4<f32>((*wv).w1.z), x2, fma(vec4<f32>((*wv).w1.y), x1, fma(vec4<f32>((*wv).w1.x), x0, (*acc).a11)))); }
    if (RT > 2u) { (*acc).a21 = fma(vec4<f32>((*wv).w2.w), x3, fma(vec4<f32>((*wv).w2.z), x2, fma(vec4<f32>((*wv).w2.y), x1, fma(vec4<f32>((*wv).w2.x), x0, (*acc).a21)))); }
    if (RT > 3u) { (*acc).a31 = fma(vec4<f32>((*wv).w3.w), x3, fma(vec4<f32>((*wv).w3.z), x2, fma(vec4<f32>((*wv).w3.y), x1, fma(vec4<f32>((*wv).w3.x), x0, (*acc).a31)))); }
    if (RT > 4u) { (*acc).a41 = fma(vec4<f32>((*wv).w4.w), x3, fma(vec4<f32>((*wv).w4.z), x2, fma(vec4<f32>((*wv).w4.y), x1, fma(vec4<f32>((*wv).w4.x), x0, (*acc).a41)))); }
    if (RT > 5u) { (*acc).a51 = fma(vec4<f32>((*wv).w5.w), x3, fma(vec4<f32>((*wv).w5.z), x2, fma(vec4<f32>((*wv).w5.y), x1, fma(vec4<f32>((*wv).w5.x), x0, (*acc).a51)))); }
    if (RT > 6u) { (*acc).a61 = fma(vec4<f32>((*wv).w6.w), x3, fma(vec4<f32>((*wv).w6.z), x2, fma(vec4<f32>((*wv).w6.y), x1, fma(vec4<f32>((*wv).w6.x), x0, (*acc).a61)))); }
    if (RT > 7u) { (*acc).a71 = fma(vec4<f32>((*wv).w7.w), x3, fma(vec4<f32>((*wv).w7.z), x2, fma(vec4<f32>((*wv).w7.y), x1, fma(vec4<f32>((*wv).w7.x), x0, (*acc).a71)))); }
  }
  if (TQ > 2u) {
    let X = xcols(8u, c);
    let x0 = X[0];
    let x1 = X[1];
    let x2 = X[2];
    let x3 = X[3];
    { (*acc).a02 = fma(vec4<f32>((*wv).w0.w), x3, fma(vec4<f32>((*wv).w0.z), x2, fma(vec4<f32>((*wv).w0.y), x1, fma(vec4<f32>((*wv).w0.x), x0, (*acc).a02)))); }
    if (RT > 1u) { (*acc).a12 = fma(vec4<f32>((*wv).w1.w), x3, fma(vec4<f32>((*wv).w1.z), x2, fma(vec4<f32>((*wv).w1.y), x1, fma(vec4<f32>((*wv).w1.x), x0, (*acc).a12)))); }
    if (RT > 2u) { (*acc).a22 = fma(vec4<f32>((*wv).w2.w), x3, fma(vec4<f32>((*wv).w2.z), x2, fma(vec4<f32>((*wv).w2.y), x1, fma(vec4<f32>((*wv).w2.x), x0, (*acc).a22)))); }
    if (RT > 3u) { (*acc).a32 = fma(vec4<f32>((*wv).w3.w), x3, fma(vec4<f32>((*wv).w3.z), x2, fma(vec4<f32>((*wv).w3.y), x1, fma(vec4<f32>((*wv).w3.x), x0, (*acc).a32)))); }
    if (RT > 4u) { (*acc).a42 = fma(vec4<f32>((*wv).w4.w), x3, fma(vec4<f32>((*wv).w4.z), x2, fma(vec4<f32>((*wv).w4.y), x1, fma(vec4<f32>((*wv).w4.x), x0, (*acc).a42)))); }
    if (RT > 5u) { (*acc).a52 = fma(vec4<f32>((*wv).w5.w), x3, fma(vec4<f32>((*wv).w5.z), x2, fma(vec4<f32>((*wv).w5.y), x1, fma(vec4<f32>((*wv).w5.x), x0, (*acc).a52)))); }
    if (RT > 6u) { (*acc).a62 = fma(vec4<f32>((*wv).w6.w), x3, fma(vec4<f32>((*wv).w6.z), x2, fma(vec4<f32>((*wv).w6.y), x1, fma(vec4<f32>((*wv).w6.x), x0, (*acc).a62)))); }
    if (RT > 7u) { (*acc).a72 = fma(vec4<f32>((*wv).w7.w), x3, fma(vec4<f32>((*wv).w7.z), x2, fma(vec4<f32>((*wv).w7.y), x1, fma(vec4<f32>((*wv).w7.x), x0, (*acc).a72)))); }
  }
  if (TQ > 3u) {
    let X = xcols(12u, c);
    let x0 = X[0];
    let x1 = X[1];
    let x2 = X[2];
    let x3 = X[3];
    { (*acc).a03 = fma(vec4<f32>((*wv).w0.w), x3, fma(vec4<f32>((*wv).w0.z), x2, fma(vec4<f32>((*wv).w0.y), x1, fma(vec4<f32>((*wv).w0.x), x0, (*acc).a03)))); }
    if (RT > 1u) { (*acc).a13 = fma(vec4<f32>((*wv).w1.w), x3, fma(vec4<f32>((*wv).w1.z), x2, fma(vec4<f32>((*wv).w1.y), x1, fma(vec4<f32>((*wv).w1.x), x0, (*acc).a13)))); }
    if (RT > 2u) { (*acc).a23 = fma(vec4<f32>((*wv).w2.w), x3, fma(vec4<f32>((*wv).w2.z), x2, fma(vec4<f32>((*wv).w2.y), x1, fma(vec4<f32>((*wv).w2.x), x0, (*acc).a23)))); }
    if (RT > 3u) { (*acc).a33 = fma(vec4<f32>((*wv).w3.w), x3, fma(vec4<f32>((*wv).w3.z), x2, fma(vec4<f32>((*wv).w3.y), x1, fma(vec4<f32>((*wv).w3.x), x0, (*acc).a33)))); }
    if (RT > 4u) { (*acc).a43 = fma(vec4<f32>((*wv).w4.w), x3, fma(vec4<f32>((*wv).w4.z), x2, fma(vec4<f32>((*wv).w4.y), x1, fma(vec4<f32>((*wv).w4.x), x0, (*acc).a43)))); }
    if (RT > 5u) { (*acc).a53 = fma(vec4<f32>((*wv).w5.w), x3, fma(vec4<f32>((*wv).w5.z), x2, fma(vec4<f32>((*wv).w5.y), x1, fma(vec4<f32>((*wv).w5.x), x0, (*acc).a53)))); }
    if (RT > 6u) { (*acc).a63 = fma(vec4<f32>((*wv).w6.w), x3, fma(vec4<f32>((*wv).w6.z), x2, fma(vec4<f32>((*wv).w6.y), x1, fma(vec4<f32>((*wv).w6.x), x0, (*acc).a63)))); }
    if (RT > 7u) { (*acc).a73 = fma(vec4<f32>((*wv).w7.w), x3, fma(vec4<f32>((*wv).w7.z), x2, fma(vec4<f32>((*wv).w7.y), x1, fma(vec4<f32>((*wv).w7.x), x0, (*acc).a73)))); }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
  // no early return (barriers below): rows past the end recompute the last row, token slots past T hold the last
  // token; neither is written (store4, include/linear.wgsl)
  let r0 = gid.x * RT;
  let t0 = wid.y * TQ * 4u;
  let lastR = params.rows - 1u;
  let lastT = params.T - 1u;
  let sv = params.stride / 4u;
  let b0 = min(r0 + 0u, lastR) * sv;
  let b1 = min(r0 + 1u, lastR) * sv;
  let b2 = min(r0 + 2u, lastR) * sv;
  let b3 = min(r0 + 3u, lastR) * sv;
  let b4 = min(r0 + 4u, lastR) * sv;
  let b5 = min(r0 + 5u, lastR) * sv;
  let b6 = min(r0 + 6u, lastR) * sv;
  let b7 = min(r0 + 7u, lastR) * sv;
  let s0 = ((params.rowStart + min(r0 + 0u, lastR)) / 128u) * params.scaleCols;
  let s1 = ((params.rowStart + min(r0 + 1u, lastR)) / 128u) * params.scaleCols;
  let s2 = ((params.rowStart + min(r0 + 2u, lastR)) / 128u) * params.scaleCols;
  let s3 = ((params.rowStart + min(r0 + 3u, lastR)) / 128u) * params.scaleCols;
  let s4 = ((params.rowStart + min(r0 + 4u, lastR)) / 128u) * params.scaleCols;
  let s5 = ((params.rowStart + min(r0 + 5u, lastR)) / 128u) * params.scaleCols;
  let s6 = ((params.rowStart + min(r0 + 6u, lastR)) / 128u) * params.scaleCols;
  let s7 = ((params.rowStart + min(r0 + 7u, lastR)) / 128u) * params.scaleCols;
  let mul = select(1.0, 256.0, F16BITS);
  let words = (params.cols + 15u) / 16u; // vec4 words holding the row's codes (the rest of the last is 0)
  var acc: Acc;
  for (var kb = 0u; kb < params.scaleCols; kb++) {
    // 1. stage x[t0 .. t0 + TT, kb·KC .. + KC] (columns past cols as 0: their codes are 0 too)
    workgroupBarrier();
    for (var i = lid; i < TQ * 4u * KW; i += WG) {
      let col = kb * KC + (i % KW) * 4u;
      let at = params.xOffset + min(t0 + i / KW, lastT) * params.xStride;
      var v = vec4<f32>(0.0);
      for (var e = 0u; e < 4u; e++) {
        if (col + e < params.cols) { v[e] = x[at + col + e]; }
      }
      xs[i] = v;
    }
    workgroupBarrier();
    // 2-3. the block's codes, 16 columns at a time
    let sc0 = scale[s0 + kb] * mul;
    var sc1 = 0.0;
    if (RT > 1u) { sc1 = scale[s1 + kb] * mul; }
    var sc2 = 0.0;
    if (RT > 2u) { sc2 = scale[s2 + kb] * mul; }
    var sc3 = 0.0;
    if (RT > 3u) { sc3 = scale[s3 + kb] * mul; }
    var sc4 = 0.0;
    if (RT > 4u) { sc4 = scale[s4 + kb] * mul; }
    var sc5 = 0.0;
    if (RT > 5u) { sc5 = scale[s5 + kb] * mul; }
    var sc6 = 0.0;
    if (RT > 6u) { sc6 = scale[s6 + kb] * mul; }
    var sc7 = 0.0;
    if (RT > 7u) { sc7 = scale[s7 + kb] * mul; }
    let kend = min(kb * 8u + 8u, words);
    for (var k = kb * 8u; k < kend; k++) {
      let q0 = w[b0 + k];
      var q1 = vec4<u32>(0u);
      if (RT > 1u) { q1 = w[b1 + k]; }
      var q2 = vec4<u32>(0u);
      if (RT > 2u) { q2 = w[b2 + k]; }
      var q3 = vec4<u32>(0u);
      if (RT > 3u) { q3 = w[b3 + k]; }
      var q4 = vec4<u32>(0u);
      if (RT > 4u) { q4 = w[b4 + k]; }
      var q5 = vec4<u32>(0u);
      if (RT > 5u) { q5 = w[b5 + k]; }
      var q6 = vec4<u32>(0u);
      if (RT > 6u) { q6 = w[b6 + k]; }
      var q7 = vec4<u32>(0u);
      if (RT > 7u) { q7 = w[b7 + k]; }
      let c = 16u * (k - kb * 8u);
      {
        var wv: Wq;
        { wv.w0 = dec(q0.x) * sc0; }
        if (RT > 1u) { wv.w1 = dec(q1.x) * sc1; }
        if (RT > 2u) { wv.w2 = dec(q2.x) * sc2; }
        if (RT > 3u) { wv.w3 = dec(q3.x) * sc3; }
        if (RT > 4u) { wv.w4 = dec(q4.x) * sc4; }
        if (RT > 5u) { wv.w5 = dec(q5.x) * sc5; }
        if (RT > 6u) { wv.w6 = dec(q6.x) * sc6; }
        if (RT > 7u) { wv.w7 = dec(q7.x) * sc7; }
        word(&acc, &wv, c + 0u);
      }
      {
        var wv: Wq;
        { wv.w0 = dec(q0.y) * sc0; }
        if (RT > 1u) { wv.w1 = dec(q1.y) * sc1; }
        if (RT > 2u) { wv.w2 = dec(q2.y) * sc2; }
        if (RT > 3u) { wv.w3 = dec(q3.y) * sc3; }
        if (RT > 4u) { wv.w4 = dec(q4.y) * sc4; }
        if (RT > 5u) { wv.w5 = dec(q5.y) * sc5; }
        if (RT > 6u) { wv.w6 = dec(q6.y) * sc6; }
        if (RT > 7u) { wv.w7 = dec(q7.y) * sc7; }
        word(&acc, &wv, c + 4u);
      }
      {
        var wv: Wq;
        { wv.w0 = dec(q0.z) * sc0; }
        if (RT > 1u) { wv.w1 = dec(q1.z) * sc1; }
        if (RT > 2u) { wv.w2 = dec(q2.z) * sc2; }
        if (RT > 3u) { wv.w3 = dec(q3.z) * sc3; }
        if (RT > 4u) { wv.w4 = dec(q4.z) * sc4; }
        if (RT > 5u) { wv.w5 = dec(q5.z) * sc5; }
        if (RT > 6u) { wv.w6 = dec(q6.z) * sc6; }
        if (RT > 7u) { wv.w7 = dec(q7.z) * sc7; }
        word(&acc, &wv, c + 8u);
      }
      {
        var wv: Wq;
        { wv.w0 = dec(q0.w) * sc0; }
        if (RT > 1u) { wv.w1 = dec(q1.w) * sc1; }
        if (RT > 2u) { wv.w2 = dec(q2.w) * sc2; }
        if (RT > 3u) { wv.w3 = dec(q3.w) * sc3; }
        if (RT > 4u) { wv.w4 = dec(q4.w) * sc4; }
        if (RT > 5u) { wv.w5 = dec(q5.w) * sc5; }
        if (RT > 6u) { wv.w6 = dec(q6.w) * sc6; }
        if (RT > 7u) { wv.w7 = dec(q7.w) * sc7; }
        word(&acc, &wv, c + 12u);
      }
    }
  }
  store4(t0, r0 + 0u, acc.a00);
  if (TQ > 1u) { store4(t0 + 4u, r0 + 0u, acc.a01); }
  if (TQ > 2u) { store4(t0 + 8u, r0 + 0u, acc.a02); }
  if (TQ > 3u) { store4(t0 + 12u, r0 + 0u, acc.a03); }
  if (RT > 1u) {
    store4(t0, r0 + 1u, acc.a10);
    if (TQ > 1u) { store4(t0 + 4u, r0 + 1u, acc.a11); }
    if (TQ > 2u) { store4(t0 + 8u, r0 + 1u, acc.a12); }
    if (TQ > 3u) { store4(t0 + 12u, r0 + 1u, acc.a13); }
  }
  if (RT > 2u) {
    store4(t0, r0 + 2u, acc.a20);
    if (TQ > 1u) { store4(t0 + 4u, r0 + 2u, acc.a21); }
    if (TQ > 2u) { store4(t0 + 8u, r0 + 2u, acc.a22); }
    if (TQ > 3u) { store4(t0 + 12u, r0 + 2u, acc.a23); }
  }
  if (RT > 3u) {
    store4(t0, r0 + 3u, acc.a30);
    if (TQ > 1u) { store4(t0 + 4u, r0 + 3u, acc.a31); }
    if (TQ > 2u) { store4(t0 + 8u, r0 + 3u, acc.a32); }
    if (TQ > 3u) { store4(t0 + 12u, r0 + 3u, acc.a33); }
  }
  if (RT > 4u) {
    store4(t0, r0 + 4u, acc.a40);
    if (TQ > 1u) { store4(t0 + 4u, r0 + 4u, acc.a41); }
    if (TQ > 2u) { store4(t0 + 8u, r0 + 4u, acc.a42); }
    if (TQ > 3u) { store4(t0 + 12u, r0 + 4u, acc.a43); }
  }
  if (RT > 5u) {
    store4(t0, r0 + 5u, acc.a50);
    if (TQ > 1u) { store4(t0 + 4u, r0 + 5u, acc.a51); }
    if (TQ > 2u) { store4(t0 + 8u, r0 + 5u, acc.a52); }
    if (TQ > 3u) { store4(t0 + 12u, r0 + 5u, acc.a53); }
  }
  if (RT > 6u) {
    store4(t0, r0 + 6u, acc.a60);
    if (TQ > 1u) { store4(t0 + 4u, r0 + 6u, acc.a61); }
    if (TQ > 2u) { store4(t0 + 8u, r0 + 6u, acc.a62); }
    if (TQ > 3u) { store4(t0 + 12u, r0 + 6u, acc.a63); }
  }
  if (RT > 7u) {
    store4(t0, r0 + 7u, acc.a70);
    if (TQ > 1u) { store4(t0 + 4u, r0 + 7u, acc.a71); }
    if (TQ > 2u) { store4(t0 + 8u, r0 + 7u, acc.a72); }
    if (TQ > 3u) { store4(t0 + 12u, r0 + 7u, acc.a73); }
  }
}
