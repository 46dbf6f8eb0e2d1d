// shaders/include/format_fp8.wgsl: the block-FP8 weight format of the kernel families (`// #formats`), spliced at
// `// #include "format.wgsl"`. Codes: E4M3FN, 4 per u32 (little-endian), padded 16-byte rows; scales: one f32
// weight_scale_inv per 128 x 128 block (fp8-layout.ts).
//
// The interface every format_*.wgsl implements (kernel bodies use nothing else of a format):
//   QCOLS          columns per u32 word
//   SROWS, SCOLS   rows and columns one scale covers (srow / smat of format_common.wgsl place them)
//   HAS_SCALES     false: no scales (the scale lookup is 1.0; the kernel still binds a scales buffer)
//   WQ             the values of one word (vecN / matNx4 of f32)
//   qvals(q)       the word's values, exact, unscaled
//   xq(xo, c, n)   the activations its columns c .. c + QCOLS - 1 multiply: xin[xo + c ..], 0 at or past n
//   qfma(a, w, x)  a + w ⊙ x;   qsum(a) Σ a;   qdot(w, x) Σ w ⊙ x
//   wvals(q)       the word's values for kernels that reuse them across tokens (moe_*_union), × cmul() exact
//   xt(a, b, c)    the activations a word at column c multiplies, from workgroup memory: a, b are the 8 staged
//                  values from column c - c % 4 on (the tiled kernels, grouped_tiled.wgsl)
//   qfma4(a, w, x0, x1, x2, x3)  a + (w · x0, w · x1, w · x2, w · x3): one word against 4 tokens, one fma per
//                  (column, token) in column order (the tiled kernels)
//   CW, CWORDS, XC, xc_full(at), xc_tail(xo, c, n), cdot(q, x), CMUL
//                  the same for one chunk CW of CWORDS words (the wide kernels' load): cdot(q, x) · CMUL is the
//                  chunk's unscaled dot (CMUL folds a decoder's constant factor into the scale)
//   CD, cdec(q), cdotd(d, x)  a chunk decoded once and dotted with one token's x: cdot(q, x) is cdotd(cdec(q), x)
//                  (fp8_gemv_wide's TB tokens per invocation reuse one decode)
// FP8: the scalar path decodes with the f32 bit trick (docs/kernels.md §3.1 (A)); the chunk path, when F16BITS (override,
// default true), two codes per 32-bit op through f16 bit patterns + unpack2x16float (§3.1 B): the f16 value is the
// E4M3 value / 256, exact (subnormals included), so CMUL = 256.

// #include "format_common.wgsl"
// #include "xin.wgsl"
// #include "fp8x4.wgsl"

const QCOLS: u32 = 4u;
const SROWS: u32 = 128u;
const SCOLS: u32 = 128u;
const HAS_SCALES: bool = true;
override F16BITS: bool = true;
const CMUL: f32 = 256.0; // used only when F16BITS (cmul())

alias WQ = vec4<f32>;
fn qvals(q: u32) -> WQ { return fp8x4(q); }
fn xq(xo: u32, c: u32, n: u32) -> WQ { return x4(xo, c, n); }
fn qfma(a: WQ, w: WQ, x: WQ) -> WQ { return a + w * x; }
fn qsum(a: WQ) -> f32 { return dot(a, vec4<f32>(1.0)); }
fn qdot(w: WQ, x: WQ) -> f32 { return dot(w, x); }
fn xt(a: vec4<f32>, b: vec4<f32>, c: u32) -> WQ { return a; }
// #include "qfma4_vec4.wgsl"
fn qfma4(a: vec4<f32>, w: WQ, x0: WQ, x1: WQ, x2: WQ, x3: WQ) -> vec4<f32> { return fma4(a, w, x0, x1, x2, x3); }

// one 16-column chunk (a vec4<u32> of codes) and its x, in registers
alias CW = vec4<u32>;
const CWORDS: u32 = 4u;
// #include "xc16.wgsl"
fn cmul() -> f32 { return select(1.0, CMUL, F16BITS); }

// the 4 codes of q decoded for dot4d; F16BITS: the f16 pairs (codes 0, 2, codes 1, 3) / 256, else the values
fn dec4(q: u32) -> vec4<f32> {
  if (F16BITS) {
    let ev = unpack2x16float(((q << 7u) & 0x3F803F80u) | ((q << 8u) & 0x80008000u)); // codes 0, 2
    let od = unpack2x16float(((q >> 1u) & 0x3F803F80u) | (q & 0x80008000u));        // codes 1, 3
    return vec4<f32>(ev, od);
  }
  return fp8x4(q);
}

// Σ_j code_j · xv[j] over 4 codes decoded by dec4; F16BITS: the sum / 256
fn dot4d(d: vec4<f32>, xv: vec4<f32>) -> f32 {
  if (F16BITS) {
    return dot(d.xy, xv.xz) + dot(d.zw, xv.yw);
  }
  return dot(d, xv);
}

// the 4 codes of q for reuse (grouped_tiled.wgsl); F16BITS: the values / 256 (cmul() restores them)
fn wvals(q: u32) -> WQ {
  if (F16BITS) {
    return dec4(q).xzyw;
  }
  return fp8x4(q);
}

// a chunk decoded once (cdec) and dotted with one token's x (cdotd): cdot(q, x) = cdotd(cdec(q), x), the same
// operations in the same order, so a kernel that reuses cdec across tokens (fp8_gemv_wide TB > 1) computes each
// token's sums exactly as the one-token kernel does
fn cdec(q: CW) -> CD { return CD(dec4(q.x), dec4(q.y), dec4(q.z), dec4(q.w)); }
fn cdotd(d: CD, x: XC) -> f32 {
  return (dot4d(d.a, x.a) + dot4d(d.b, x.b)) + (dot4d(d.c, x.c) + dot4d(d.d, x.d));
}
fn cdot(q: CW, x: XC) -> f32 { return cdotd(cdec(q), x); }
