// fp8_gemm_tiled.wgsl — block-FP8 matrix-matrix product for prefill (T tokens), register-blocked and tiled
// through workgroup memory:
//   y[yOffset + t·yStride + rowStart + r] (+)= Σ_c (e4m3(W[r, c]) · scale[(rowStart + r) / 128, c / 128])
//                                                 · x[xOffset + t·xStride + c]
// Same contract as fp8_gemm.wgsl. A workgroup owns WG·RT rows x TT = 4·TQ tokens; each invocation a register
// tile of RT rows x TT tokens (vec4 accumulators in a struct with named fields: lavapipe spills dynamically
// indexed private arrays). Per 128-column block (one scale block, KC columns):
//   1. the workgroup stages the x tile [TT tokens, 128 columns] in workgroup memory (columns past `cols` as 0);
//   2. each invocation loads one vec4<u32> of codes per row per 16 columns (16 codes), decodes each code once
//      (F16BITS: two codes per op through f16 bit patterns + unpack2x16float, kernels.md §3.1 B) and multiplies
//      it by its row's block scale, so every decoded weight equals dequantizeFp8Block's f32 value exactly;
//   3. and reuses it from registers for the TT tokens: one explicit fma per (row, token, column), the x value
//      read from workgroup memory at a workgroup-uniform address.
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
//   4  params  uniform     Params (as fp8_gemm.wgsl)
// Workgroup: WG invocations (override) along rows, RT consecutive rows each (override, 1..4), TT = 4·TQ tokens
// each (override TQ, 1..4), all sharing the workgroup's tokens. Dispatch: (⌈rows / (WG·RT)⌉, ⌈T / TT⌉).
// CPU counterpart: src/model/reference.ts linear on dequantizeFp8Block(W) (src/format/fp8.ts).

override WG: u32 = 64u;
override RT: u32 = 4u;         // rows per invocation, 1..4
override TQ: u32 = 2u;         // token quads per invocation, 1..4 (TT = 4·TQ tokens)
override F16BITS: bool = true; // decode via unpack2x16float (true) or the f32 bit trick (false)
const KC: u32 = 128u;          // columns per stage: one scale block

struct Params {
  rows: u32,       // rows of this chunk
  cols: u32,       // in elements
  stride: u32,     // words per weight row (a multiple of 4, >= ⌈cols / 4⌉)
  rowStart: u32,   // global row index of chunk row 0
  xOffset: u32,    // in elements
  yOffset: u32,    // in elements
  scaleCols: u32,  // ⌈cols / 128⌉
  accumulate: u32, // 1: y += W·x, 0: y = W·x
  T: u32,          // tokens
  xStride: u32,    // elements between consecutive tokens of x
  yStride: u32,    // elements between consecutive tokens of y
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// the x tile: token slot s (0..15), column cc of the block at s·KC + cc
var<workgroup> xs: array<f32, 2048>;

// E4M3FN code (low 8 bits of b) -> f32, exact (kernels.md §3.1 A)
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
}

// one u32 word (4 columns from block column c) of each of the RT rows (q[i]: row i's word) against the tile's
// tokens: per column, one explicit fma per (row, token) — a mul + add pair would issue twice the instructions of
// the FMA ceiling's fma (bench_fma.wgsl) — with the decoded weight per lane and 4 tokens' x at that column
fn word(acc: ptr<function, Acc>, c: u32, q: vec4<u32>, sc: vec4<f32>) {
  let w0 = dec(q.x) * sc.x;
  let w1 = dec(q.y) * sc.y;
  let w2 = dec(q.z) * sc.z;
  let w3 = dec(q.w) * sc.w;
  {
    let x0 = vec4<f32>(xs[0u * KC + c + 0u], xs[1u * KC + c + 0u], xs[2u * KC + c + 0u], xs[3u * KC + c + 0u]);
    let x1 = vec4<f32>(xs[0u * KC + c + 1u], xs[1u * KC + c + 1u], xs[2u * KC + c + 1u], xs[3u * KC + c + 1u]);
    let x2 = vec4<f32>(xs[0u * KC + c + 2u], xs[1u * KC + c + 2u], xs[2u * KC + c + 2u], xs[3u * KC + c + 2u]);
    let x3 = vec4<f32>(xs[0u * KC + c + 3u], xs[1u * KC + c + 3u], xs[2u * KC + c + 3u], xs[3u * KC + c + 3u]);
    { (*acc).a00 = fma(vec4<f32>(w0.w), x3, fma(vec4<f32>(w0.z), x2, fma(vec4<f32>(w0.y), x1, fma(vec4<f32>(w0.x), x0, (*acc).a00)))); }
    if (RT > 1u) { (*acc).a10 = fma(vec4<f32>(w1.w), x3, fma(vec4<f32>(w1.z), x2, fma(vec4<f32>(w1.y), x1, fma(vec4<f32>(w1.x), x0, (*acc).a10)))); }
    if (RT > 2u) { (*acc).a20 = fma(vec4<f32>(w2.w), x3, fma(vec4<f32>(w2.z), x2, fma(vec4<f32>(w2.y), x1, fma(vec4<f32>(w2.x), x0, (*acc).a20)))); }
    if (RT > 3u) { (*acc).a30 = fma(vec4<f32>(w3.w), x3, fma(vec4<f32>(w3.z), x2, fma(vec4<f32>(w3.y), x1, fma(vec4<f32>(w3.x), x0, (*acc).a30)))); }
  }
  if (TQ > 1u) {
    let x0 = vec4<f32>(xs[4u * KC + c + 0u], xs[5u * KC + c + 0u], xs[6u * KC + c + 0u], xs[7u * KC + c + 0u]);
    let x1 = vec4<f32>(xs[4u * KC + c + 1u], xs[5u * KC + c + 1u], xs[6u * KC + c + 1u], xs[7u * KC + c + 1u]);
    let x2 = vec4<f32>(xs[4u * KC + c + 2u], xs[5u * KC + c + 2u], xs[6u * KC + c + 2u], xs[7u * KC + c + 2u]);
    let x3 = vec4<f32>(xs[4u * KC + c + 3u], xs[5u * KC + c + 3u], xs[6u * KC + c + 3u], xs[7u * KC + c + 3u]);
    { (*acc).a01 = fma(vec4<f32>(w0.w), x3, fma(vec4<f32>(w0.z), x2, fma(vec4<f32>(w0.y), x1, fma(vec4<f32>(w0.x), x0, (*acc).a01)))); }
    if (RT > 1u) { (*acc).a11 = fma(vec4<f32>(w1.w), x3, fma(vec4<f32>(w1.z), x2, fma(vec4<f32>(w1.y), x1, fma(vec4<f32>(w1.x), x0, (*acc).a11)))); }
    if (RT > 2u) { (*acc).a21 = fma(vec4<f32>(w2.w), x3, fma(vec4<f32>(w2.z), x2, fma(vec4<f32>(w2.y), x1, fma(vec4<f32>(w2.x), x0, (*acc).a21)))); }
    if (RT > 3u) { (*acc).a31 = fma(vec4<f32>(w3.w), x3, fma(vec4<f32>(w3.z), x2, fma(vec4<f32>(w3.y), x1, fma(vec4<f32>(w3.x), x0, (*acc).a31)))); }
  }
  if (TQ > 2u) {
    let x0 = vec4<f32>(xs[8u * KC + c + 0u], xs[9u * KC + c + 0u], xs[10u * KC + c + 0u], xs[11u * KC + c + 0u]);
    let x1 = vec4<f32>(xs[8u * KC + c + 1u], xs[9u * KC + c + 1u], xs[10u * KC + c + 1u], xs[11u * KC + c + 1u]);
    let x2 = vec4<f32>(xs[8u * KC + c + 2u], xs[9u * KC + c + 2u], xs[10u * KC + c + 2u], xs[11u * KC + c + 2u]);
    let x3 = vec4<f32>(xs[8u * KC + c + 3u], xs[9u * KC + c + 3u], xs[10u * KC + c + 3u], xs[11u * KC + c + 3u]);
    { (*acc).a02 = fma(vec4<f32>(w0.w), x3, fma(vec4<f32>(w0.z), x2, fma(vec4<f32>(w0.y), x1, fma(vec4<f32>(w0.x), x0, (*acc).a02)))); }
    if (RT > 1u) { (*acc).a12 = fma(vec4<f32>(w1.w), x3, fma(vec4<f32>(w1.z), x2, fma(vec4<f32>(w1.y), x1, fma(vec4<f32>(w1.x), x0, (*acc).a12)))); }
    if (RT > 2u) { (*acc).a22 = fma(vec4<f32>(w2.w), x3, fma(vec4<f32>(w2.z), x2, fma(vec4<f32>(w2.y), x1, fma(vec4<f32>(w2.x), x0, (*acc).a22)))); }
    if (RT > 3u) { (*acc).a32 = fma(vec4<f32>(w3.w), x3, fma(vec4<f32>(w3.z), x2, fma(vec4<f32>(w3.y), x1, fma(vec4<f32>(w3.x), x0, (*acc).a32)))); }
  }
  if (TQ > 3u) {
    let x0 = vec4<f32>(xs[12u * KC + c + 0u], xs[13u * KC + c + 0u], xs[14u * KC + c + 0u], xs[15u * KC + c + 0u]);
    let x1 = vec4<f32>(xs[12u * KC + c + 1u], xs[13u * KC + c + 1u], xs[14u * KC + c + 1u], xs[15u * KC + c + 1u]);
    let x2 = vec4<f32>(xs[12u * KC + c + 2u], xs[13u * KC + c + 2u], xs[14u * KC + c + 2u], xs[15u * KC + c + 2u]);
    let x3 = vec4<f32>(xs[12u * KC + c + 3u], xs[13u * KC + c + 3u], xs[14u * KC + c + 3u], xs[15u * KC + c + 3u]);
    { (*acc).a03 = fma(vec4<f32>(w0.w), x3, fma(vec4<f32>(w0.z), x2, fma(vec4<f32>(w0.y), x1, fma(vec4<f32>(w0.x), x0, (*acc).a03)))); }
    if (RT > 1u) { (*acc).a13 = fma(vec4<f32>(w1.w), x3, fma(vec4<f32>(w1.z), x2, fma(vec4<f32>(w1.y), x1, fma(vec4<f32>(w1.x), x0, (*acc).a13)))); }
    if (RT > 2u) { (*acc).a23 = fma(vec4<f32>(w2.w), x3, fma(vec4<f32>(w2.z), x2, fma(vec4<f32>(w2.y), x1, fma(vec4<f32>(w2.x), x0, (*acc).a23)))); }
    if (RT > 3u) { (*acc).a33 = fma(vec4<f32>(w3.w), x3, fma(vec4<f32>(w3.z), x2, fma(vec4<f32>(w3.y), x1, fma(vec4<f32>(w3.x), x0, (*acc).a33)))); }
  }
}

fn store(t: u32, r: u32, v: f32) {
  let o = params.yOffset + t * params.yStride + params.rowStart + r;
  if (params.accumulate != 0u) {
    y[o] += v;
  } else {
    y[o] = v;
  }
}

// the valid tokens t .. t+3 of row r
fn store4(t: u32, r: u32, v: vec4<f32>) {
  if (r >= params.rows || t >= params.T) {
    return;
  }
  store(t, r, v.x);
  if (t + 1u < params.T) { store(t + 1u, r, v.y); }
  if (t + 2u < params.T) { store(t + 2u, r, v.z); }
  if (t + 3u < params.T) { store(t + 3u, r, v.w); }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
  // no early return (barriers below): rows past the end recompute the last row, token slots past T hold the last
  // token; neither is written (store4)
  let r0 = gid.x * RT;
  let t0 = wid.y * TQ * 4u;
  let lastR = params.rows - 1u;
  let lastT = params.T - 1u;
  let sv = params.stride / 4u;
  let b0 = min(r0, lastR) * sv;
  let b1 = min(r0 + 1u, lastR) * sv;
  let b2 = min(r0 + 2u, lastR) * sv;
  let b3 = min(r0 + 3u, lastR) * sv;
  let s0 = ((params.rowStart + min(r0, lastR)) / 128u) * params.scaleCols;
  let s1 = ((params.rowStart + min(r0 + 1u, lastR)) / 128u) * params.scaleCols;
  let s2 = ((params.rowStart + min(r0 + 2u, lastR)) / 128u) * params.scaleCols;
  let s3 = ((params.rowStart + min(r0 + 3u, lastR)) / 128u) * params.scaleCols;
  let mul = select(1.0, 256.0, F16BITS);
  let words = (params.cols + 15u) / 16u; // vec4 words holding the row's codes (the rest of the last is 0)
  var acc: Acc;
  for (var kb = 0u; kb < params.scaleCols; kb++) {
    // 1. stage x[t0 .. t0 + TT, kb·KC .. + KC] (columns past cols as 0: their codes are 0 too)
    workgroupBarrier();
    for (var i = lid; i < TQ * 4u * KC; i += WG) {
      let col = kb * KC + i % KC;
      let tok = min(t0 + i / KC, lastT);
      xs[i] = select(0.0, x[params.xOffset + tok * params.xStride + min(col, params.cols - 1u)], col < params.cols);
    }
    workgroupBarrier();
    // 2-3. the block's codes, 16 columns at a time
    let sc = vec4<f32>(scale[s0 + kb], scale[s1 + kb], scale[s2 + kb], scale[s3 + kb]) * mul;
    let kend = min(kb * 8u + 8u, words);
    for (var k = kb * 8u; k < kend; k++) {
      let q0 = w[b0 + k];
      var q1 = vec4<u32>(0u);
      var q2 = vec4<u32>(0u);
      var q3 = vec4<u32>(0u);
      if (RT > 1u) { q1 = w[b1 + k]; }
      if (RT > 2u) { q2 = w[b2 + k]; }
      if (RT > 3u) { q3 = w[b3 + k]; }
      let c = 16u * (k - kb * 8u);
      word(&acc, c, vec4<u32>(q0.x, q1.x, q2.x, q3.x), sc);
      word(&acc, c + 4u, vec4<u32>(q0.y, q1.y, q2.y, q3.y), sc);
      word(&acc, c + 8u, vec4<u32>(q0.z, q1.z, q2.z, q3.z), sc);
      word(&acc, c + 12u, vec4<u32>(q0.w, q1.w, q2.w, q3.w), sc);
    }
  }
  store4(t0 + 0u, r0, acc.a00);
  if (TQ > 1u) { store4(t0 + 4u, r0, acc.a01); }
  if (TQ > 2u) { store4(t0 + 8u, r0, acc.a02); }
  if (TQ > 3u) { store4(t0 + 12u, r0, acc.a03); }
  if (RT > 1u) {
    store4(t0 + 0u, r0 + 1u, acc.a10);
    if (TQ > 1u) { store4(t0 + 4u, r0 + 1u, acc.a11); }
    if (TQ > 2u) { store4(t0 + 8u, r0 + 1u, acc.a12); }
    if (TQ > 3u) { store4(t0 + 12u, r0 + 1u, acc.a13); }
  }
  if (RT > 2u) {
    store4(t0 + 0u, r0 + 2u, acc.a20);
    if (TQ > 1u) { store4(t0 + 4u, r0 + 2u, acc.a21); }
    if (TQ > 2u) { store4(t0 + 8u, r0 + 2u, acc.a22); }
    if (TQ > 3u) { store4(t0 + 12u, r0 + 2u, acc.a23); }
  }
  if (RT > 3u) {
    store4(t0 + 0u, r0 + 3u, acc.a30);
    if (TQ > 1u) { store4(t0 + 4u, r0 + 3u, acc.a31); }
    if (TQ > 2u) { store4(t0 + 8u, r0 + 3u, acc.a32); }
    if (TQ > 3u) { store4(t0 + 12u, r0 + 3u, acc.a33); }
  }
}
