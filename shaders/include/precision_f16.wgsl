// shaders/include/precision_f16.wgsl: the f16 precision (`shader-f16`; opt-in --precision f16) of the kernel families
// with a `// #precisions f32 f16` line (interface: precision_f32.wgsl). Four E4M3 codes become four f16 values with
// integer ops and one bitcast<vec2<f16>> per pair: a code's 7 magnitude bits land at f16 bits 7..13 and its sign at
// bit 15, so the f16 value is the E4M3 value / 256, exact, subnormals included (SMUL = 256). x is rounded to f16 and
// each 4-term dot is formed in f16, then widened to f32. Error vs the f32 precision: x rounding (2^-11 relative)
// and the f16 partial dots, ~1e-3 of Σ|w·x|.
enable f16;

alias XV = vec4<f16>;
const SMUL: f32 = 256.0;
fn pvals(q: u32) -> XV {
  let lo = ((q & 0x80u) << 8u) | ((q & 0x7Fu) << 7u) | ((q & 0x8000u) << 16u) | ((q & 0x7F00u) << 15u);
  let hi = ((q & 0x800000u) >> 8u) | ((q & 0x7F0000u) >> 9u) | (q & 0x80000000u) | ((q & 0x7F000000u) >> 1u);
  return vec4<f16>(bitcast<vec2<f16>>(lo), bitcast<vec2<f16>>(hi));
}
fn xv(v: vec4<f32>) -> XV { return vec4<f16>(v); }
fn pdot(w: XV, x: XV) -> f32 { return f32(dot(w, x)); }
