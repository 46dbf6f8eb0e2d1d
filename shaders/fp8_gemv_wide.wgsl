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
//   4  params  uniform     Params (include/linear.wgsl; T unused: grid y is the token)
// Workgroup: WG threads (override, default 64), RPT consecutive rows per thread, no barriers.
// Dispatch: (⌈rows / (WG · RPT)⌉, T).
// CPU counterpart: src/model/reference.ts matVec on the dequantised weight: dequantizeFp8Block (src/format/fp8.ts),
// bf16ArrayToF32, dequantizeInt4 (src/format/int4.ts).
// #formats fp8 bf16 int4

override WG: u32 = 64u;
override RPT: u32 = 4u;        // rows per invocation, 1..8

// #include "linear.wgsl"

@group(0) @binding(0) var<storage, read> w: array<CW>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> xin: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// #include "format.wgsl"
// #include "wide_rows.wgsl"

// chunk k of the RPT rows (chunk offsets bl: rows 0-3, bh: rows 4-7) against one chunk of x, into the partial
// dots pl (rows 0-3) and ph (rows 4-7)
fn step(bl: vec4<u32>, bh: vec4<u32>, k: u32, xc: XC, pl: ptr<function, vec4<f32>>, ph: ptr<function, vec4<f32>>) {
  (*pl).x += cdot(w[bl.x + k], xc);
  if (RPT > 1u) { (*pl).y += cdot(w[bl.y + k], xc); }
  if (RPT > 2u) { (*pl).z += cdot(w[bl.z + k], xc); }
  if (RPT > 3u) { (*pl).w += cdot(w[bl.w + k], xc); }
  if (RPT > 4u) { (*ph).x += cdot(w[bh.x + k], xc); }
  if (RPT > 5u) { (*ph).y += cdot(w[bh.y + k], xc); }
  if (RPT > 6u) { (*ph).z += cdot(w[bh.z + k], xc); }
  if (RPT > 7u) { (*ph).w += cdot(w[bh.w + k], xc); }
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
  let bl = vec4<u32>(r0, min(r0 + 1u, last), min(r0 + 2u, last), min(r0 + 3u, last)) * sv;
  let bh = vec4<u32>(min(r0 + 4u, last), min(r0 + 5u, last), min(r0 + 6u, last), min(r0 + 7u, last)) * sv;
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
  var al = vec4<f32>(0.0); // rows 0-3
  var ah = vec4<f32>(0.0); // rows 4-7
  for (var k0 = 0u; k0 < ch.y; k0 += ch.z) {
    let kend = min(k0 + ch.z, ch.x);
    var pl = vec4<f32>(0.0);
    var ph = vec4<f32>(0.0);
    for (var k = k0; k < kend; k++) {
      step(bl, bh, k, xc_full(xo + CCOLS * k), &pl, &ph);
    }
    if (kend < min(k0 + ch.z, ch.y)) {
      // the last, partial chunk (always in the last block): padding codes are 0, x masked to 0 past cols
      step(bl, bh, ch.x, xc_tail(xo, CCOLS * ch.x, params.cols), &pl, &ph);
    }
    if (HAS_SCALES) {
      let kb = k0 / ch.z;
      al.x += pl.x * (scale[s0 + kb] * mul);
      if (RPT > 1u) { al.y += pl.y * (scale[s1 + kb] * mul); }
      if (RPT > 2u) { al.z += pl.z * (scale[s2 + kb] * mul); }
      if (RPT > 3u) { al.w += pl.w * (scale[s3 + kb] * mul); }
      if (RPT > 4u) { ah.x += ph.x * (scale[s4 + kb] * mul); }
      if (RPT > 5u) { ah.y += ph.y * (scale[s5 + kb] * mul); }
      if (RPT > 6u) { ah.z += ph.z * (scale[s6 + kb] * mul); }
      if (RPT > 7u) { ah.w += ph.w * (scale[s7 + kb] * mul); }
    } else {
      al += pl;
      ah += ph;
    }
  }
  let o = params.yOffset + t * params.yStride + g + r0;
  put(o, al.x);
  if (RPT > 1u && r0 + 1u < params.rows) { put(o + 1u, al.y); }
  if (RPT > 2u && r0 + 2u < params.rows) { put(o + 2u, al.z); }
  if (RPT > 3u && r0 + 3u < params.rows) { put(o + 3u, al.w); }
  if (RPT > 4u && r0 + 4u < params.rows) { put(o + 4u, ah.x); }
  if (RPT > 5u && r0 + 5u < params.rows) { put(o + 5u, ah.y); }
  if (RPT > 6u && r0 + 6u < params.rows) { put(o + 6u, ah.z); }
  if (RPT > 7u && r0 + 7u < params.rows) { put(o + 7u, ah.w); }
}
