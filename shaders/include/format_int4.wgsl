// shaders/include/format_int4.wgsl: the INT4 weight format of the kernel families (`// #formats`), spliced at
// `// #include "format.wgsl"` (interface: format_fp8.wgsl). compressed-tensors pack-quantized, symmetric, group 32
// (model-spec §13): 8 codes per u32, column j of a row in bits 4 (j mod 8) .. 4 (j mod 8) + 3 of word j / 8,
// stored u = q + 8; rows padded with 0 words to 16 bytes (int4RowStrideWords); one f32 scale per row and 32
// columns (the stored BF16 group scale, widened exactly). W[r, c] = (u - 8) · scale, the group's partial dot
// multiplied by its scale once. The wide kernels' chunk is 2 words (16 columns, half a group: 16 x values in
// registers, as FP8's chunk; a 32-value chunk spilled registers on lavapipe and ran slower than FP8).
//   qvals (thread-per-row and grouped kernels): u - 8 exactly, as the f32 (2^23 + u) - (2^23 + 8) (the f32 bit
//     trick: u in the low mantissa bits of 2^23).
//   cdot (wide kernels, the decode hot path): u · 2^-24 exactly, two codes per 32-bit op: a nibble in the low bits of
//     an f16 is the subnormal u · 2^-24 (unpack2x16float, as FP8's F16BITS decode), CMUL = 2^24 folded into the
//     scale; the -8 of every code is one term per group, coff(x) = -8 · 2^-24 · Σ x over the chunk, added once per
//     row (Σ (u - 8) x = Σ u x - 8 Σ x: the same sum, decoded codes exact, f32 rounding of the two parts; about 3
//     shift/and/unpack ops per code pair instead of 4 per code).

// #include "format_common.wgsl"
// #include "xin.wgsl"

const QCOLS: u32 = 8u;
const SROWS: u32 = 1u;
const SCOLS: u32 = 32u;
const HAS_SCALES: bool = true;
const COFF: bool = true; // cdot leaves out a per-chunk offset term: coff(x)
fn cmul() -> f32 { return 16777216.0; } // 2^24

// codes 0-3 (lo) and 4-7 (hi) of q as u - 8, exact
fn nib4(q: u32) -> vec4<f32> {
  let u = (vec4<u32>(q, q >> 4u, q >> 8u, q >> 12u) & vec4<u32>(0xFu)) | vec4<u32>(0x4B000000u);
  return bitcast<vec4<f32>>(u) - vec4<f32>(8388616.0);
}

alias WQ = mat2x4<f32>;
fn qvals(q: u32) -> WQ { return WQ(nib4(q), nib4(q >> 16u)); }
fn xq(xo: u32, c: u32, n: u32) -> WQ { return WQ(x4m(xo, c, n), x4m(xo, c + 4u, n)); }
fn qfma(a: WQ, w: WQ, x: WQ) -> WQ { return WQ(a[0] + w[0] * x[0], a[1] + w[1] * x[1]); }
fn qsum(a: WQ) -> f32 { return dot(a[0] + a[1], vec4<f32>(1.0)); }
fn qdot(w: WQ, x: WQ) -> f32 { return dot(w[0], x[0]) + dot(w[1], x[1]); }

// one 16-column chunk of x (2 words, half a scale group), in registers
alias CW = vec2<u32>;
const CWORDS: u32 = 2u;
// #include "xc16.wgsl"

// Σ_j u_j · 2^-24 · x_j over the 8 codes of q (codes 0-3 against lo, 4-7 against hi)
fn udot8(q: u32, lo: vec4<f32>, hi: vec4<f32>) -> f32 {
  let a = unpack2x16float(q & 0x000F000Fu);          // codes 0, 4
  let b = unpack2x16float((q >> 4u) & 0x000F000Fu);  // codes 1, 5
  let c = unpack2x16float((q >> 8u) & 0x000F000Fu);  // codes 2, 6
  let d = unpack2x16float((q >> 12u) & 0x000F000Fu); // codes 3, 7
  return dot(vec4<f32>(a.x, b.x, c.x, d.x), lo) + dot(vec4<f32>(a.y, b.y, c.y, d.y), hi);
}
fn cdot(q: CW, x: XC) -> f32 { return udot8(q.x, x.a, x.b) + udot8(q.y, x.c, x.d); }
// the -8 of every code of the chunk, in cdot's units: -8 · 2^-24 · Σ x
fn coff(x: XC) -> f32 { return dot((x.a + x.b) + (x.c + x.d), vec4<f32>(-4.76837158203125e-7)); }
