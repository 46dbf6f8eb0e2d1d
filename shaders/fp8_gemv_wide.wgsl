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
// Several tokens (INT4 dense prefill, batched decode rows): TB tokens per invocation (override, 1..8; grid y =
// ⌈T / TB⌉): each row's chunk is decoded once (cdec) and dotted with each token's x chunk (cdotd). A token's sums
// take exactly the one-token kernel's operations in its order (cdot = cdotd ∘ cdec), so a row's result depends on
// neither T nor TB: batch-invariant, bit-identical to the one-token GEMV (test/kernels/linear.gpu.test.ts).
// NORM (override, default false): the input is RMSNorm'ed on the fly (docs/model.md §4.2), replacing the rmsnorm
// dispatch before the GEMV (docs/kernels.md "Fused decode dispatches"):
//   y[.. r] (+)= inv_t · Σ_c W[rowStart + r, c] · (nw[c] · xin[xo + c]),  inv_t = 1 / sqrt(Σ_c xin[xo + c]² / cols + EPS)
// every invocation sums the squares of the x chunks it loads anyway (no barrier, no extra x loads) and multiplies
// each chunk by the norm weight before the dots; its RPT sums are scaled by inv_t at the end.
// XN (override, with NORM): the normalised rows are also written, in xin's layout, for the other readers of the
// norm (the MoE experts read what the router GEMV normalises): workgroup (0, t)'s invocations that own rows write
//   xn[xo + c] = nw[c] · (xin[xo + c] · inv_t)   c < cols   (strided over those invocations; each row chunk's dispatch
// writes the same values)
//
// Bindings (group 0):
//   0  w       array<CW>   [rows, stride / CWORDS]   codes of one row chunk; stride (u32 words) a multiple of 4
//   1  scale   array<f32>  FP8 [⌈R/128⌉, scaleCols], INT4 [R, scaleCols], BF16 any 16 bytes (R = all rows)
//   2  xin     array<f32>  [T, xStride] at xOffset   input rows (cols used per token)
//   3  y       array<f32>  [T, yStride] at yOffset   output rows; chunk row r is column rowStart + r
//   4  params  uniform     Params (include/linear.wgsl; T: the tokens of this launch)
//   5  nw      array<vec4<f32>>  [⌈cols / 4⌉]          NORM: the RMSNorm weight, padded to whole vec4; otherwise any
//                                                       16 bytes, not read
//   6  xn      array<f32>  [T, xStride] at xOffset    XN: the normalised rows (written); otherwise any 16 bytes
// Workgroup: WG threads (override, default 64), RPT consecutive rows x TB tokens per thread, no barriers.
// Dispatch: (⌈rows / (WG · RPT)⌉, ⌈T / TB⌉).
// CPU counterpart: src/model/reference.ts matVec on the dequantised weight: dequantizeFp8Block (src/format/fp8.ts),
// bf16ArrayToF32, dequantizeInt4 (src/format/int4.ts); NORM: of reference.ts rmsNorm(x, nw, EPS).
// #formats fp8 bf16 int4

override WG: u32 = 64u;
override RPT: u32 = 4u;        // rows per invocation, 1..8
override NORM: bool = false;   // RMSNorm the input row on the fly (nw, EPS)
override EPS: f32 = 1e-6;      // NORM: the norm's epsilon
override XN: bool = false;     // NORM: also write the normalised rows to xn
override TB: u32 = 1u;         // tokens per invocation, 1..8

// #include "linear.wgsl"

@group(0) @binding(0) var<storage, read> w: array<CW>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> xin: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> nw: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> xn: array<f32>;

// #include "format.wgsl"
// #include "wide_rows.wgsl"

// chunk k (column c) of the RPT rows (chunk offsets bl: rows 0-3, bh: rows 4-7) against the invocation's nt tokens
// (x at xo[i]), into their partial dots pl[i] (rows 0-3) and ph[i] (rows 4-7): each row's codes are decoded once
// (cdec) and dotted with every token's x chunk (cdotd), each token's sum in the order of the one-token kernel
fn step(bl: vec4<u32>, bh: vec4<u32>, k: u32, c: u32, full: bool, nt: u32, xo: ptr<function, array<u32, 8>>,
        ss: ptr<function, array<f32, 8>>, pl: ptr<function, array<vec4<f32>, 8>>, ph: ptr<function, array<vec4<f32>, 8>>) {
  let d0 = cdec(w[bl.x + k]);
  var d1 = d0; var d2 = d0; var d3 = d0; var d4 = d0; var d5 = d0; var d6 = d0; var d7 = d0;
  if (RPT > 1u) { d1 = cdec(w[bl.y + k]); }
  if (RPT > 2u) { d2 = cdec(w[bl.z + k]); }
  if (RPT > 3u) { d3 = cdec(w[bl.w + k]); }
  if (RPT > 4u) { d4 = cdec(w[bh.x + k]); }
  if (RPT > 5u) { d5 = cdec(w[bh.y + k]); }
  if (RPT > 6u) { d6 = cdec(w[bh.z + k]); }
  if (RPT > 7u) { d7 = cdec(w[bh.w + k]); }
  for (var i = 0u; i < TB; i++) {
    if (i >= nt) { break; }
    var si = (*ss)[i];
    let xc = xload((*xo)[i], c, full, &si);
    (*ss)[i] = si;
    (*pl)[i].x += cdotd(d0, xc);
    if (RPT > 1u) { (*pl)[i].y += cdotd(d1, xc); }
    if (RPT > 2u) { (*pl)[i].z += cdotd(d2, xc); }
    if (RPT > 3u) { (*pl)[i].w += cdotd(d3, xc); }
    if (RPT > 4u) { (*ph)[i].x += cdotd(d4, xc); }
    if (RPT > 5u) { (*ph)[i].y += cdotd(d5, xc); }
    if (RPT > 6u) { (*ph)[i].z += cdotd(d6, xc); }
    if (RPT > 7u) { (*ph)[i].w += cdotd(d7, xc); }
  }
}

// NORM: nw[b .. b + 3] (b a multiple of 4; nw padded to whole vec4 with finite values). The tail chunk's lanes past
// cols multiply x = 0, whatever they read (a vec4 past the buffer's end reads, by WebGPU's robust access, values of
// the buffer or 0: finite)
fn nw4(b: u32) -> vec4<f32> {
  return nw[b / 4u];
}

// the x chunk at column c (xc_full / xc_tail), normalised by nw under NORM, its Σ x² added to *ss
fn xload(xo: u32, c: u32, full: bool, ss: ptr<function, f32>) -> XC {
  var xc: XC;
  if (full) { xc = xc_full(xo + c); } else { xc = xc_tail(xo, c, params.cols); }
  if (NORM) {
    *ss += xc_sq(xc);
    // the norm weights of the chunk (an 8-column chunk uses g0, g1)
    var g2 = vec4<f32>(0.0);
    var g3 = vec4<f32>(0.0);
    if (CCOLS > 8u) {
      g2 = nw4(c + 8u);
      g3 = nw4(c + 12u);
    }
    xc = xc_mul(xc, nw4(c), nw4(c + 4u), g2, g3);
  }
  return xc;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  _ = &scale; // one binding layout for every format (BF16 reads no scales)
  _ = &nw;    // and with or without NORM, XN
  _ = &xn;
  let r0 = gid.x * RPT;
  if (r0 >= params.rows) {
    return;
  }
  let t0 = wid.y * TB;               // the invocation's first token
  let nt = min(TB, params.T - t0);   // its tokens (grid y = ⌈T / TB⌉: at least 1)
  var xo = array<u32, 8>();
  for (var i = 0u; i < TB; i++) {
    xo[i] = params.xOffset + (t0 + i) * params.xStride;
  }
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
  var ss = array<f32, 8>();         // NORM: Σ x² per token
  var al = array<vec4<f32>, 8>();   // rows 0-3 per token
  var ah = array<vec4<f32>, 8>();   // rows 4-7 per token
  for (var k0 = 0u; k0 < ch.y; k0 += ch.z) {
    let kend = min(k0 + ch.z, ch.x);
    // explicitly zeroed: each block's partial dots start at 0 (a declaration without initializer in a loop body
    // was not re-zeroed per iteration on lavapipe and SwiftShader)
    var pl = array<vec4<f32>, 8>();
    var ph = array<vec4<f32>, 8>();
    for (var k = k0; k < kend; k++) {
      step(bl, bh, k, CCOLS * k, true, nt, &xo, &ss, &pl, &ph);
    }
    if (kend < min(k0 + ch.z, ch.y)) {
      // the last, partial chunk (always in the last block): padding codes are 0, x masked to 0 past cols
      step(bl, bh, ch.x, CCOLS * ch.x, false, nt, &xo, &ss, &pl, &ph);
    }
    for (var i = 0u; i < TB; i++) {
      if (i >= nt) { break; }
      if (HAS_SCALES) {
        let kb = k0 / ch.z;
        al[i].x += pl[i].x * (scale[s0 + kb] * mul);
        if (RPT > 1u) { al[i].y += pl[i].y * (scale[s1 + kb] * mul); }
        if (RPT > 2u) { al[i].z += pl[i].z * (scale[s2 + kb] * mul); }
        if (RPT > 3u) { al[i].w += pl[i].w * (scale[s3 + kb] * mul); }
        if (RPT > 4u) { ah[i].x += ph[i].x * (scale[s4 + kb] * mul); }
        if (RPT > 5u) { ah[i].y += ph[i].y * (scale[s5 + kb] * mul); }
        if (RPT > 6u) { ah[i].z += ph[i].z * (scale[s6 + kb] * mul); }
        if (RPT > 7u) { ah[i].w += ph[i].w * (scale[s7 + kb] * mul); }
      } else {
        al[i] += pl[i];
        ah[i] += ph[i];
      }
    }
  }
  for (var i = 0u; i < TB; i++) {
    if (i >= nt) { break; }
    if (NORM) {
      let inv = 1.0 / sqrt(ss[i] / f32(params.cols) + EPS);
      al[i] *= inv;
      ah[i] *= inv;
      if (XN && wid.x == 0u) {
        let owners = min(WG, (params.rows + RPT - 1u) / RPT); // invocations of workgroup 0 that own rows (did not return)
        for (var c = lid; c < params.cols; c += owners) {
          xn[xo[i] + c] = nw[c / 4u][c % 4u] * (xin[xo[i] + c] * inv);
        }
      }
    }
    let o = params.yOffset + (t0 + i) * params.yStride + g + r0;
    put(o, al[i].x);
    if (RPT > 1u && r0 + 1u < params.rows) { put(o + 1u, al[i].y); }
    if (RPT > 2u && r0 + 2u < params.rows) { put(o + 2u, al[i].z); }
    if (RPT > 3u && r0 + 3u < params.rows) { put(o + 3u, al[i].w); }
    if (RPT > 4u && r0 + 4u < params.rows) { put(o + 4u, ah[i].x); }
    if (RPT > 5u && r0 + 5u < params.rows) { put(o + 5u, ah[i].y); }
    if (RPT > 6u && r0 + 6u < params.rows) { put(o + 6u, ah[i].z); }
    if (RPT > 7u && r0 + 7u < params.rows) { put(o + 7u, ah[i].w); }
  }
}
