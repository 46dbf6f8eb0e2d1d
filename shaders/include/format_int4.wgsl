// shaders/include/format_int4.wgsl: the INT4 weight format of the kernel families (`// #formats`), spliced at
// `// #include "format.wgsl"` (interface: format_fp8.wgsl). compressed-tensors pack-quantized, symmetric, group 32
// (docs/model.md §13): 8 codes per u32, column j of a row in bits 4 (j mod 8) .. 4 (j mod 8) + 3 of word j / 8,
// stored u = q + 8; rows padded with 0 words to 16 bytes (int4RowStrideWords); one f32 scale per row and 32
// columns (the stored BF16 group scale, widened exactly). W[r, c] = (u - 8) · scale, the group's partial dot
// multiplied by its scale once. The wide kernels' chunk is 2 words (16 columns, half a group: 16 x values in
// registers, as FP8's chunk; a 32-value chunk spilled registers on lavapipe and ran slower than FP8).
//   Every code is decoded exactly as u - 8 (int4x8.wgsl, the f32 bit trick), by qvals (thread-per-row and grouped
//     kernels) and cdot (wide kernels, the decode hot path).

// #include "format_common.wgsl"
// #include "xin.wgsl"
// #include "int4x8.wgsl"

const QCOLS: u32 = 8u;
const SROWS: u32 = 1u;
const SCOLS: u32 = 32u;
const HAS_SCALES: bool = true;
fn cmul() -> f32 { return 1.0; }

alias WQ = mat2x4<f32>;
fn qvals(q: u32) -> WQ { return int4x8(q); }
fn xq(xo: u32, c: u32, n: u32) -> WQ { return WQ(x4m(xo, c, n), x4m(xo, c + 4u, n)); }
fn qfma(a: WQ, w: WQ, x: WQ) -> WQ { return WQ(a[0] + w[0] * x[0], a[1] + w[1] * x[1]); }
fn qsum(a: WQ) -> f32 { return dot(a[0] + a[1], vec4<f32>(1.0)); }
fn qdot(w: WQ, x: WQ) -> f32 { return dot(w[0], x[0]) + dot(w[1], x[1]); }
fn xt(a: vec4<f32>, b: vec4<f32>, c: u32) -> WQ { return WQ(a, b); }
// #include "qfma4_vec4.wgsl"
fn qfma4(a: vec4<f32>, w: WQ, x0: WQ, x1: WQ, x2: WQ, x3: WQ) -> vec4<f32> {
  return fma4(fma4(a, w[0], x0[0], x1[0], x2[0], x3[0]), w[1], x0[1], x1[1], x2[1], x3[1]);
}
fn wvals(q: u32) -> WQ { return qvals(q); }

// one 16-column chunk of x (2 words, half a scale group), in registers
alias CW = vec2<u32>;
const CWORDS: u32 = 2u;
// #include "xc16.wgsl"

// a chunk decoded once (cdec) and dotted with one token's x (cdotd): cdot(q, x) = cdotd(cdec(q), x), the same
// operations in the same order (as format_fp8.wgsl)
fn cdec(q: CW) -> CD { let a = int4x8(q.x); let b = int4x8(q.y); return CD(a[0], a[1], b[0], b[1]); }
fn cdotd(d: CD, x: XC) -> f32 { return (dot(d.a, x.a) + dot(d.b, x.b)) + (dot(d.c, x.c) + dot(d.d, x.d)); }
fn cdot(q: CW, x: XC) -> f32 { return cdotd(cdec(q), x); }
