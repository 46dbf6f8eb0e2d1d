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
// XS (override, default false): the workgroup first stages its tokens' x rows in workgroup memory (xs, XSN vec4s:
// ⌈cols / 16⌉ · 4 per token, zero past cols; one barrier) and every chunk's x is read from there. On lavapipe a
// storage-buffer load at a workgroup-uniform address inside a loop is a per-lane gather with a bounds check, and
// those loads bound this kernel: XS ran 1.25-1.4x faster at toy widths (docs/benchmarks.md "x through workgroup
// memory"); the values read are the same, so XS changes no result bit.
// NORM (override, default false; needs XS): the input rows are RMSNorm'ed on the fly (docs/model.md §4.2),
// replacing the rmsnorm dispatch before the GEMV (docs/kernels.md "Fused decode dispatches"), with the XS barrier
// as its only one:
//   y[.. r] (+)= inv_t · Σ_c W[rowStart + r, c] · xs[t, c],  xs[t, c] = nw[c] · xin[xo + c]
//   inv_t = 1 / sqrt(Σ_c xin[xo + c]² / cols + EPS)
// Σ x²: each invocation sums the squares of the columns c ≡ lid (mod WG) into xss[t, lid] while staging, and after
// the barrier every invocation adds the WG partials in order: include/rms_inv.wgsl's sums in its order, so inv_t is
// rmsnorm.wgsl's factor bit for bit (WG 64 both); the product differs from rmsnorm + GEMV by where inv_t multiplies.
// XN (override, with NORM): the normalised rows are also written, in xin's layout, for the other readers of the
// norm (the MoE experts read what the router GEMV normalises): workgroup (0, t)'s invocations write
//   xn[xo + c] = nw[c] · (xin[xo + c] · inv_t)   c < cols   (rmsnorm.wgsl's values; each row chunk's dispatch
//                                                            writes the same ones)
//
// Bindings (group 0):
//   0  w       array<CW>   [rows, stride / CWORDS]   codes of one row chunk; stride (u32 words) a multiple of 4
//   1  scale   array<f32>  FP8 [⌈R/128⌉, scaleCols], INT4 [R, scaleCols], BF16 any 16 bytes (R = all rows)
//   2  xin     array<f32>  [T, xStride] at xOffset   input rows (cols used per token)
//   3  y       array<f32>  [T, yStride] at yOffset   output rows; chunk row r is column rowStart + r
//   4  params  uniform     Params (include/linear.wgsl; T: the tokens of this launch)
//   5  nw      array<vec4<f32>>  [⌈cols / 4⌉]          NORM: the RMSNorm weight (a vec4 past its end reads finite
//                                                       values or 0, robust access); otherwise any 16 bytes, not read
//   6  xn      array<f32>  [T, xStride] at xOffset    XN: the normalised rows (written); otherwise any 16 bytes
// Workgroup: WG threads (override, default 64), RPT consecutive rows x TB tokens per thread; one barrier under XS, in
// uniform control flow before any invocation returns, none otherwise.
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
override XS: bool = false;     // x staged in workgroup memory
override XSN: u32 = 1u;        // XS: capacity of xs in vec4s (≥ TB · ⌈cols / 16⌉ · 4)
override XSS: u32 = 1u;        // NORM: capacity of xss (≥ TB · WG)

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

var<workgroup> xs: array<vec4<f32>, XSN>; // XS: [TB, xsRow()] the tokens' x rows (NORM: times nw), 0 past cols
var<workgroup> xss: array<f32, XSS>;      // NORM: [TB, WG] per-invocation partial sums of x²

// vec4s per token row of xs: whole 16-column chunks (a chunk's loads never cross into the next row)
fn xsRow() -> u32 {
  return ((params.cols + 15u) / 16u) * 4u;
}

// XS: the workgroup's tokens' x rows into xs (NORM: times nw, their partial Σ x² into xss), one barrier; NORM:
// returns each token's inv_t (XN: the normalised rows written to xn by workgroup x = 0). Every invocation calls it,
// in uniform control flow.
fn stage(nt: u32, xo: ptr<function, array<u32, 8>>, lid: u32, wx: u32) -> array<f32, 8> {
  let xr = xsRow();
  let n = params.cols;
  for (var i = 0u; i < TB; i++) {
    if (i >= nt) { break; }
    let o = (*xo)[i];
    if (NORM) {
      var ss = 0.0;
      for (var c = lid; c < n; c += WG) {
        let v = xin[o + c];
        ss += v * v;
      }
      xss[i * WG + lid] = ss;
    }
    for (var v = lid; v < xr; v += WG) {
      var x = x4m(o, v * 4u, n);
      if (NORM) { x *= nw[v]; } // columns past cols: x is 0, whatever nw reads there
      xs[i * xr + v] = x;
    }
  }
  workgroupBarrier();
  var inv = array<f32, 8>();
  if (NORM) {
    for (var i = 0u; i < TB; i++) {
      if (i >= nt) { break; }
      var total = 0.0;
      for (var j = 0u; j < WG; j++) { total += xss[i * WG + j]; }
      inv[i] = 1.0 / sqrt(total / f32(n) + EPS);
      if (XN && wx == 0u) {
        let o = (*xo)[i];
        for (var c = lid; c < n; c += WG) { xn[o + c] = nw[c / 4u][c % 4u] * (xin[o + c] * inv[i]); }
      }
    }
  }
  return inv;
}

// chunk k (column c) of the RPT rows (chunk offsets bl: rows 0-3, bh: rows 4-7) against the invocation's nt tokens
// (x at xo[i], or row i of xs), into their partial dots pl[i] (rows 0-3) and ph[i] (rows 4-7): each row's codes are
// decoded once (cdec) and dotted with every token's x chunk (cdotd), each token's sum in the order of the one-token
// kernel
fn step(bl: vec4<u32>, bh: vec4<u32>, k: u32, c: u32, full: bool, nt: u32, xo: ptr<function, array<u32, 8>>,
        pl: ptr<function, array<vec4<f32>, 8>>, ph: ptr<function, array<vec4<f32>, 8>>) {
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
    let xc = xload(i, (*xo)[i], c, full);
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

// token i's x chunk at column c: from xs (XS; an 8-column chunk takes the first two vec4s), else from xin
// (xc_full / xc_tail, masked to 0 past cols)
fn xload(i: u32, xo: u32, c: u32, full: bool) -> XC {
  if (XS) {
    let v = i * xsRow() + c / 4u;
    return xc4(xs[v], xs[v + 1u], xs[v + 2u], xs[v + 3u]);
  }
  if (full) { return xc_full(xo + c); }
  return xc_tail(xo, c, params.cols);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  _ = &scale; // one binding layout for every format (BF16 reads no scales)
  _ = &nw;    // and with or without NORM, XN
  _ = &xn;
  let t0 = wid.y * TB;               // the invocation's first token
  let nt = min(TB, params.T - t0);   // its tokens (grid y = ⌈T / TB⌉: at least 1)
  var xo = array<u32, 8>();
  for (var i = 0u; i < TB; i++) {
    xo[i] = params.xOffset + (t0 + i) * params.xStride;
  }
  var inv = array<f32, 8>(); // NORM: each token's 1 / rms
  if (XS) { inv = stage(nt, &xo, lid, wid.x); }
  let r0 = gid.x * RPT;
  if (r0 >= params.rows) {
    return;
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
  var al = array<vec4<f32>, 8>();   // rows 0-3 per token
  var ah = array<vec4<f32>, 8>();   // rows 4-7 per token
  for (var k0 = 0u; k0 < ch.y; k0 += ch.z) {
    let kend = min(k0 + ch.z, ch.x);
    // explicitly zeroed: each block's partial dots start at 0 (a declaration without initializer in a loop body
    // was not re-zeroed per iteration on lavapipe and SwiftShader)
    var pl = array<vec4<f32>, 8>();
    var ph = array<vec4<f32>, 8>();
    for (var k = k0; k < kend; k++) {
      step(bl, bh, k, CCOLS * k, true, nt, &xo, &pl, &ph);
    }
    if (kend < min(k0 + ch.z, ch.y)) {
      // the last, partial chunk (always in the last block): padding codes are 0, x masked to 0 past cols
      step(bl, bh, ch.x, CCOLS * ch.x, false, nt, &xo, &pl, &ph);
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
      al[i] *= inv[i];
      ah[i] *= inv[i];
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
