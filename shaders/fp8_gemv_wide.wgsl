// fp8_gemv_wide.wgsl — the dense matrix-vector product for decode, tuned for CPU adapters; a kernel family:
// fp8_gemv_wide (block FP8), fp8_gemv_wide_bf16 (BF16), fp8_gemv_wide_int4 (INT4 pack-quantized, group 32), one
// body, the weight format spliced from shaders/include/format_*.wgsl (docs/kernels.md §1 "Kernel families"):
//   y[yOffset + t·yStride + rowStart + r] (+)= Σ_c W[rowStart + r, c] · xin[xOffset + t·xStride + c]
//                                                                              r < rows (this chunk), t < T
//   FP8:  W[i, c] = e4m3(code) · scale[⌊i / 128⌋, ⌊c / 128⌋]   (weight_scale_inv, docs/model.md §3)
//   BF16: W[i, c] = bf16(code)                                (no scales: the scale binding is bound, not read)
//   INT4: W[i, c] = (u − 8) · scale[i, ⌊c / 32⌋]               (pack-quantized nibbles, docs/model.md §13)
// The scale lookup is the format's srow (format_common.wgsl) of the GLOBAL row rowStart + r: the scales of the
// whole tensor are bound whatever row chunk runs.
// What makes it fast on lavapipe and SwiftShader (docs/benchmarks.md, "Tuning"):
//   - chunk loads CW of the format: FP8 a vec4<u32> (16 columns), BF16 a vec4<u32> (8), INT4 a vec2<u32> (16: half
//     a scale group); rows start on 16-byte boundaries (fp8-layout.ts), padding 0;
//   - RPT rows per invocation (override, 1..8): each x chunk is loaded once and reused from registers for RPT
//     rows, and the RPT independent accumulation chains hide FMA latency;
//   - the format's chunk decoder cdot: FP8 with F16BITS (override, FP8 instance only) decodes two codes per
//     32-bit op through f16 bit patterns + unpack2x16float (docs/kernels.md §3.1 (B); exact, the 256 folded
//     into the block scale: cmul()), else the f32 bit trick; INT4 nibbles through the f32 bit trick (§3.1 (D));
//     BF16 by bits << 16. Every decode is exact; NaN codes 0x7F/0xFF decode to ±480 (the loader refuses them).
//   - the partial dot of one scale block (FP8: 128 columns, INT4: 32) is multiplied by its scale once.
// The ragged last chunk of a row multiplies x masked to 0 past `cols` (padding codes are 0 too). Rows past
// `rows` recompute the last row and are not written. The FP8 instance sums in exactly the order of the FP8-only
// kernel it replaced (bit-identical outputs).
// Prefill through this kernel (INT4 dense linears, T > 1) is the GEMV per token row: grid y = token, each token
// row computed alone (so a row's result does not depend on T: batch-invariant).
//
// Bindings (group 0):
//   0  w       array<CW>   [rows, stride / CWORDS]   codes of one row chunk; stride (u32 words) a multiple of 4
//   1  scale   array<f32>  FP8 [⌈R/128⌉, scaleCols], INT4 [R, scaleCols], BF16 any 16 bytes (R = all rows)
//   2  xin     array<f32>  [T, xStride] at xOffset   input rows (cols used per token)
//   3  y       array<f32>  [T, yStride] at yOffset   output rows; chunk row r is column rowStart + r
//   4  params  uniform     Params
// Workgroup: WG threads (override, default 64), RPT consecutive rows per thread, no barriers.
// Dispatch: (⌈rows / (WG · RPT)⌉, T).
// CPU counterpart: src/model/reference.ts matVec on the dequantised weight: dequantizeFp8Block (src/format/fp8.ts),
// bf16ArrayToF32, dequantizeInt4 (src/format/int4.ts).
// #formats fp8 bf16 int4

override WG: u32 = 64u;
override RPT: u32 = 4u;        // rows per invocation, 1..8

struct Params {
  rows: u32,       // rows of this chunk
  cols: u32,       // columns (input width), in elements
  stride: u32,     // words per weight row (a multiple of 4)
  rowStart: u32,   // global row index of chunk row 0
  xOffset: u32,    // in elements
  yOffset: u32,    // in elements
  scaleCols: u32,  // scales per scale row: FP8 ⌈cols / 128⌉, INT4 ⌈cols / 32⌉, BF16 0
  accumulate: u32, // 1: y += W·x, 0: y = W·x
  xStride: u32,    // elements between consecutive tokens of x (T > 1)
  yStride: u32,    // elements between consecutive tokens of y (T > 1)
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> w: array<CW>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> xin: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// #include "format.wgsl"
// #include "wide_rows.wgsl"

fn store(o: u32, v: f32) {
  if (params.accumulate != 0u) {
    y[o] += v;
  } else {
    y[o] = v;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  _ = &scale; // one binding layout for every format (BF16 reads no scales)
  let r0 = gid.x * RPT;
  if (r0 >= params.rows) {
    return;
  }
  let t = wid.y;
  let xo = params.xOffset + t * params.xStride;
  // rows past the end recompute the last row and are not written
  let last = params.rows - 1u;
  let sv = params.stride / CWORDS; // chunks per row
  let b0 = r0 * sv;
  let b1 = min(r0 + 1u, last) * sv;
  let b2 = min(r0 + 2u, last) * sv;
  let b3 = min(r0 + 3u, last) * sv;
  let b4 = min(r0 + 4u, last) * sv;
  let b5 = min(r0 + 5u, last) * sv;
  let b6 = min(r0 + 6u, last) * sv;
  let b7 = min(r0 + 7u, last) * sv;
  let g = params.rowStart;
  let sc = params.scaleCols;
  let s0 = srow(g + r0, sc);
  let s1 = srow(g + min(r0 + 1u, last), sc);
  let s2 = srow(g + min(r0 + 2u, last), sc);
  let s3 = srow(g + min(r0 + 3u, last), sc);
  let s4 = srow(g + min(r0 + 4u, last), sc);
  let s5 = srow(g + min(r0 + 5u, last), sc);
  let s6 = srow(g + min(r0 + 6u, last), sc);
  let s7 = srow(g + min(r0 + 7u, last), sc);
  let mul = cmul();
  let ch = chunks(params.cols); // (chunks whose columns all exist, all chunks, chunks per scale block)
  var a0 = 0.0;
  var a1 = 0.0;
  var a2 = 0.0;
  var a3 = 0.0;
  var a4 = 0.0;
  var a5 = 0.0;
  var a6 = 0.0;
  var a7 = 0.0;
  for (var k0 = 0u; k0 < ch.y; k0 += ch.z) {
    let kend = min(k0 + ch.z, ch.x);
    var p0 = 0.0;
    var p1 = 0.0;
    var p2 = 0.0;
    var p3 = 0.0;
    var p4 = 0.0;
    var p5 = 0.0;
    var p6 = 0.0;
    var p7 = 0.0;
    for (var k = k0; k < kend; k++) {
      let xc = xc_full(xo + CCOLS * k);
      p0 += cdot(w[b0 + k], xc);
      if (RPT > 1u) { p1 += cdot(w[b1 + k], xc); }
      if (RPT > 2u) { p2 += cdot(w[b2 + k], xc); }
      if (RPT > 3u) { p3 += cdot(w[b3 + k], xc); }
      if (RPT > 4u) { p4 += cdot(w[b4 + k], xc); }
      if (RPT > 5u) { p5 += cdot(w[b5 + k], xc); }
      if (RPT > 6u) { p6 += cdot(w[b6 + k], xc); }
      if (RPT > 7u) { p7 += cdot(w[b7 + k], xc); }
    }
    if (kend < min(k0 + ch.z, ch.y)) {
      // the last, partial chunk (always in the last block): padding codes are 0, x masked to 0 past cols
      let k = ch.x;
      let xc = xc_tail(xo, CCOLS * k, params.cols);
      p0 += cdot(w[b0 + k], xc);
      if (RPT > 1u) { p1 += cdot(w[b1 + k], xc); }
      if (RPT > 2u) { p2 += cdot(w[b2 + k], xc); }
      if (RPT > 3u) { p3 += cdot(w[b3 + k], xc); }
      if (RPT > 4u) { p4 += cdot(w[b4 + k], xc); }
      if (RPT > 5u) { p5 += cdot(w[b5 + k], xc); }
      if (RPT > 6u) { p6 += cdot(w[b6 + k], xc); }
      if (RPT > 7u) { p7 += cdot(w[b7 + k], xc); }
    }
    if (HAS_SCALES) {
      let kb = k0 / ch.z;
      a0 += p0 * (scale[s0 + kb] * mul);
      if (RPT > 1u) { a1 += p1 * (scale[s1 + kb] * mul); }
      if (RPT > 2u) { a2 += p2 * (scale[s2 + kb] * mul); }
      if (RPT > 3u) { a3 += p3 * (scale[s3 + kb] * mul); }
      if (RPT > 4u) { a4 += p4 * (scale[s4 + kb] * mul); }
      if (RPT > 5u) { a5 += p5 * (scale[s5 + kb] * mul); }
      if (RPT > 6u) { a6 += p6 * (scale[s6 + kb] * mul); }
      if (RPT > 7u) { a7 += p7 * (scale[s7 + kb] * mul); }
    } else {
      a0 += p0;
      a1 += p1;
      a2 += p2;
      a3 += p3;
      a4 += p4;
      a5 += p5;
      a6 += p6;
      a7 += p7;
    }
  }
  let o = params.yOffset + t * params.yStride + g + r0;
  store(o, a0);
  if (RPT > 1u && r0 + 1u < params.rows) { store(o + 1u, a1); }
  if (RPT > 2u && r0 + 2u < params.rows) { store(o + 2u, a2); }
  if (RPT > 3u && r0 + 3u < params.rows) { store(o + 3u, a3); }
  if (RPT > 4u && r0 + 4u < params.rows) { store(o + 4u, a4); }
  if (RPT > 5u && r0 + 5u < params.rows) { store(o + 5u, a5); }
  if (RPT > 6u && r0 + 6u < params.rows) { store(o + 6u, a6); }
  if (RPT > 7u && r0 + 7u < params.rows) { store(o + 7u, a7); }
}
