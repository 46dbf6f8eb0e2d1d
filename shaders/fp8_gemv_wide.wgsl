// fp8_gemv_wide.wgsl — block-FP8 matrix-vector product for decode (one token), tuned for CPU adapters:
//   y[yOffset + rowStart + r] (+)= Σ_c e4m3(W[r, c]) · scale[(rowStart + r) / 128, c / 128] · x[xOffset + c]
// Same contract and result (up to summation order) as fp8_gemv.wgsl, with three changes measured on lavapipe and
// SwiftShader (docs/benchmarks.md, "Tuning"):
//   - vec4<u32> loads: 16 codes per load (the upload stride is a multiple of 4 words, fp8-layout.ts);
//   - RPT rows per invocation (override, 1..8): each x chunk is loaded once and reused from registers for
//     RPT rows, and the RPT independent accumulation chains hide FMA latency;
//   - F16BITS (override): decode two codes per 32-bit op through f16 bit patterns + unpack2x16float
//     (docs/kernels.md §3.1 (B); core WGSL, no shader-f16): each code's 7 magnitude bits go to f16 bits 7..13 and its
//     sign to bit 15, so the f16 value is the E4M3 value / 256 (subnormals included), exact in f32; the 256 is
//     folded into the block scale. 6 integer ops + 2 unpacks per 4 codes against ~14 ops per code for the f32
//     bit trick (§3.1 A, F16BITS = false, as fp8_gemv.wgsl). Exactness over all 256 codes is tested per
//     adapter (test/kernels/linear.gpu.test.ts). NaN codes 0x7F/0xFF decode to ±480 in both modes.
//
// Bindings (group 0): as fp8_gemv.wgsl, with the codes viewed as vec4<u32>
//   0  w       array<vec4<u32>> [rows, stride / 4]   FP8 codes; stride (in u32 words) must be a multiple of 4,
//                                                    bytes past `cols` in a row are 0 (padded at upload)
//   1  scale   array<f32>  [⌈R/128⌉, scaleCols]      block scales of the whole tensor (R = all rows)
//   2  x       array<f32>  [cols] at xOffset         input vector
//   3  y       array<f32>  [R] at yOffset            output; row r of the chunk is element rowStart + r
//   4  params  uniform     Params (as fp8_gemv.wgsl)
// Workgroup: WG threads (override, default 64), RPT consecutive rows per thread, no barriers.
// Dispatch: ⌈rows / (WG · RPT)⌉ workgroups.
// CPU counterpart: src/model/reference.ts matVec on dequantizeFp8Block(W) (src/format/fp8.ts).

override WG: u32 = 64u;
override RPT: u32 = 4u;        // rows per invocation, 1..8
override F16BITS: bool = true; // decode via unpack2x16float (true) or the f32 bit trick (false)

struct Params {
  rows: u32,       // rows of this chunk
  cols: u32,       // columns (input width), in elements
  stride: u32,     // words per weight row (a multiple of 4, >= ⌈cols / 4⌉)
  rowStart: u32,   // global row index of chunk row 0
  xOffset: u32,    // in elements
  yOffset: u32,    // in elements
  scaleCols: u32,  // ⌈cols / 128⌉
  accumulate: u32, // 1: y += W·x, 0: y = W·x
}

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// E4M3FN code (low 8 bits of b) -> f32, exact (the f32 bit trick, as fp8_gemv.wgsl)
// #include "e4m3.wgsl"

// Σ_j code_j(q) · xv[j] for the 4 codes of q; F16BITS: the sum / 256 (the caller folds 256 into the scale)
fn dot4(q: u32, xv: vec4<f32>) -> f32 {
  if (F16BITS) {
    // codes 0 and 2 (bytes 0, 2) -> the two halves of `ev`; codes 1 and 3 -> `od`
    let ev = unpack2x16float(((q << 7u) & 0x3F803F80u) | ((q << 8u) & 0x80008000u));
    let od = unpack2x16float(((q >> 1u) & 0x3F803F80u) | (q & 0x80008000u));
    return dot(ev, xv.xz) + dot(od, xv.yw);
  }
  return dot(vec4<f32>(e4m3(q), e4m3(q >> 8u), e4m3(q >> 16u), e4m3(q >> 24u)), xv);
}

fn dot16(q: vec4<u32>, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> f32 {
  return (dot4(q.x, x0) + dot4(q.y, x1)) + (dot4(q.z, x2) + dot4(q.w, x3));
}

fn x4(at: u32) -> vec4<f32> {
  return vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]);
}

fn xmasked(c: u32) -> f32 {
  return select(0.0, x[params.xOffset + min(c, params.cols - 1u)], c < params.cols);
}

fn store(r: u32, v: f32) {
  let o = params.yOffset + params.rowStart + r;
  if (params.accumulate != 0u) {
    y[o] += v;
  } else {
    y[o] = v;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r0 = gid.x * RPT;
  if (r0 >= params.rows) {
    return;
  }
  // rows past the end recompute the last row and are not written
  let last = params.rows - 1u;
  let sv = params.stride / 4u; // vec4 words per row
  let b0 = r0 * sv;
  let b1 = min(r0 + 1u, last) * sv;
  let b2 = min(r0 + 2u, last) * sv;
  let b3 = min(r0 + 3u, last) * sv;
  let b4 = min(r0 + 4u, last) * sv;
  let b5 = min(r0 + 5u, last) * sv;
  let b6 = min(r0 + 6u, last) * sv;
  let b7 = min(r0 + 7u, last) * sv;
  let s0 = ((params.rowStart + r0) / 128u) * params.scaleCols;
  let s1 = ((params.rowStart + min(r0 + 1u, last)) / 128u) * params.scaleCols;
  let s2 = ((params.rowStart + min(r0 + 2u, last)) / 128u) * params.scaleCols;
  let s3 = ((params.rowStart + min(r0 + 3u, last)) / 128u) * params.scaleCols;
  let s4 = ((params.rowStart + min(r0 + 4u, last)) / 128u) * params.scaleCols;
  let s5 = ((params.rowStart + min(r0 + 5u, last)) / 128u) * params.scaleCols;
  let s6 = ((params.rowStart + min(r0 + 6u, last)) / 128u) * params.scaleCols;
  let s7 = ((params.rowStart + min(r0 + 7u, last)) / 128u) * params.scaleCols;
  let mul = select(1.0, 256.0, F16BITS);
  let full = params.cols / 16u; // vec4 words whose 16 columns all exist
  var a0 = 0.0;
  var a1 = 0.0;
  var a2 = 0.0;
  var a3 = 0.0;
  var a4 = 0.0;
  var a5 = 0.0;
  var a6 = 0.0;
  var a7 = 0.0;
  var k = 0u;
  for (var kb = 0u; kb < params.scaleCols; kb++) {
    let kend = min(kb * 8u + 8u, full); // 8 vec4 words = one 128-column block
    var p0 = 0.0;
    var p1 = 0.0;
    var p2 = 0.0;
    var p3 = 0.0;
    var p4 = 0.0;
    var p5 = 0.0;
    var p6 = 0.0;
    var p7 = 0.0;
    for (; k < kend; k++) {
      let at = params.xOffset + 16u * k;
      let x0 = x4(at + 0u);
      let x1 = x4(at + 4u);
      let x2 = x4(at + 8u);
      let x3 = x4(at + 12u);
      p0 += dot16(w[b0 + k], x0, x1, x2, x3);
      if (RPT > 1u) { p1 += dot16(w[b1 + k], x0, x1, x2, x3); }
      if (RPT > 2u) { p2 += dot16(w[b2 + k], x0, x1, x2, x3); }
      if (RPT > 3u) { p3 += dot16(w[b3 + k], x0, x1, x2, x3); }
      if (RPT > 4u) { p4 += dot16(w[b4 + k], x0, x1, x2, x3); }
      if (RPT > 5u) { p5 += dot16(w[b5 + k], x0, x1, x2, x3); }
      if (RPT > 6u) { p6 += dot16(w[b6 + k], x0, x1, x2, x3); }
      if (RPT > 7u) { p7 += dot16(w[b7 + k], x0, x1, x2, x3); }
    }
    if (k == full && (params.cols & 15u) != 0u && kb == params.scaleCols - 1u) {
      // the last, partial vec4 word (always in the last block): padding bytes are 0, missing x masked to 0
      let c = 16u * full;
      let x0 = vec4<f32>(xmasked(c + 0u), xmasked(c + 1u), xmasked(c + 2u), xmasked(c + 3u));
      let x1 = vec4<f32>(xmasked(c + 4u), xmasked(c + 5u), xmasked(c + 6u), xmasked(c + 7u));
      let x2 = vec4<f32>(xmasked(c + 8u), xmasked(c + 9u), xmasked(c + 10u), xmasked(c + 11u));
      let x3 = vec4<f32>(xmasked(c + 12u), xmasked(c + 13u), xmasked(c + 14u), xmasked(c + 15u));
      p0 += dot16(w[b0 + k], x0, x1, x2, x3);
      if (RPT > 1u) { p1 += dot16(w[b1 + k], x0, x1, x2, x3); }
      if (RPT > 2u) { p2 += dot16(w[b2 + k], x0, x1, x2, x3); }
      if (RPT > 3u) { p3 += dot16(w[b3 + k], x0, x1, x2, x3); }
      if (RPT > 4u) { p4 += dot16(w[b4 + k], x0, x1, x2, x3); }
      if (RPT > 5u) { p5 += dot16(w[b5 + k], x0, x1, x2, x3); }
      if (RPT > 6u) { p6 += dot16(w[b6 + k], x0, x1, x2, x3); }
      if (RPT > 7u) { p7 += dot16(w[b7 + k], x0, x1, x2, x3); }
    }
    a0 += p0 * (scale[s0 + kb] * mul);
    if (RPT > 1u) { a1 += p1 * (scale[s1 + kb] * mul); }
    if (RPT > 2u) { a2 += p2 * (scale[s2 + kb] * mul); }
    if (RPT > 3u) { a3 += p3 * (scale[s3 + kb] * mul); }
    if (RPT > 4u) { a4 += p4 * (scale[s4 + kb] * mul); }
    if (RPT > 5u) { a5 += p5 * (scale[s5 + kb] * mul); }
    if (RPT > 6u) { a6 += p6 * (scale[s6 + kb] * mul); }
    if (RPT > 7u) { a7 += p7 * (scale[s7 + kb] * mul); }
  }
  store(r0, a0);
  if (RPT > 1u && r0 + 1u < params.rows) { store(r0 + 1u, a1); }
  if (RPT > 2u && r0 + 2u < params.rows) { store(r0 + 2u, a2); }
  if (RPT > 3u && r0 + 3u < params.rows) { store(r0 + 3u, a3); }
  if (RPT > 4u && r0 + 4u < params.rows) { store(r0 + 4u, a4); }
  if (RPT > 5u && r0 + 5u < params.rows) { store(r0 + 5u, a5); }
  if (RPT > 6u && r0 + 6u < params.rows) { store(r0 + 6u, a6); }
  if (RPT > 7u && r0 + 7u < params.rows) { store(r0 + 7u, a7); }
}
