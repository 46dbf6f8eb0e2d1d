// shaders/include/format_bf16.wgsl: the BF16 weight format of the kernel families (`// #formats`), spliced at
// `// #include "format.wgsl"` (interface: format_fp8.wgsl). Codes: 2 BF16 per u32 (low half first), padded 16-byte
// rows (bf16RowStrideWords); no scales (checkpoints without quantization_config). Widening is exact (bits << 16).

// #include "format_common.wgsl"
// #include "xin.wgsl"
// #include "bf16x4.wgsl"

const QCOLS: u32 = 2u;
const SROWS: u32 = 1u;
const SCOLS: u32 = 0x40000000u; // one "block" spans any row
const HAS_SCALES: bool = false;
fn cmul() -> f32 { return 1.0; }

alias WQ = vec2<f32>;
fn qvals(q: u32) -> WQ { return bitcast<vec2<f32>>(vec2<u32>(q << 16u, q & 0xFFFF0000u)); }
fn xq(xo: u32, c: u32, n: u32) -> WQ {
  if (c + 2u <= n) { return vec2<f32>(xin[xo + c], xin[xo + c + 1u]); }
  return vec2<f32>(xin[xo + c], 0.0);
}
fn qfma(a: WQ, w: WQ, x: WQ) -> WQ { return a + w * x; }
fn qsum(a: WQ) -> f32 { return a.x + a.y; }
fn qdot(w: WQ, x: WQ) -> f32 { return dot(w, x); }
fn xt(a: vec4<f32>, b: vec4<f32>, c: u32) -> WQ { return select(a.xy, a.zw, (c & 2u) != 0u); }
fn qfma4(a: vec4<f32>, w: WQ, x0: WQ, x1: WQ, x2: WQ, x3: WQ) -> vec4<f32> {
  return fma(vec4<f32>(w.y), vec4<f32>(x0.y, x1.y, x2.y, x3.y), fma(vec4<f32>(w.x), vec4<f32>(x0.x, x1.x, x2.x, x3.x), a));
}
fn wvals(q: u32) -> WQ { return qvals(q); }

// one 8-column chunk (a vec4<u32> of codes) and its x, in registers
alias CW = vec4<u32>;
const CWORDS: u32 = 4u;
struct XC { a: vec4<f32>, b: vec4<f32> }
fn xc_full(at: u32) -> XC { return XC(x4(at, 0u, 4u), x4(at + 4u, 0u, 4u)); }
fn xc_tail(xo: u32, c: u32, n: u32) -> XC { return XC(x4m(xo, c, n), x4m(xo, c + 4u, n)); }
// a chunk decoded once (cdec) and dotted with one token's x (cdotd): cdot(q, x) = cdotd(cdec(q), x) (as format_fp8.wgsl)
struct CD { a: vec4<f32>, b: vec4<f32> }
fn cdec(q: CW) -> CD { return CD(bf16x4(q.x, q.y), bf16x4(q.z, q.w)); }
fn cdotd(d: CD, x: XC) -> f32 { return dot(d.a, x.a) + dot(d.b, x.b); }
fn cdot(q: CW, x: XC) -> f32 { return cdotd(cdec(q), x); }
// a chunk from the first two of four vec4s (fp8_gemv_wide XS, as xc16.wgsl)
fn xc4(a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32>) -> XC { return XC(a, b); }
