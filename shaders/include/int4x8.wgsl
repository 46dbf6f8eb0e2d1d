// shaders/include/int4x8.wgsl: spliced by format_int4.wgsl and bench_int4_decode.wgsl.
// Σ_j (u_j - 8) · x_j over the 8 INT4 codes of q (codes 0-3 against lo, 4-7 against hi), each code decoded exactly:
// two codes per 32-bit op through f16 bit patterns, 0x6400 | u = the f16 1024 + u (unpack2x16float), minus 1032.
fn udot8(q: u32, lo: vec4<f32>, hi: vec4<f32>) -> f32 {
  let m = vec2<f32>(1032.0);
  let a = unpack2x16float((q & 0x000F000Fu) | 0x64006400u) - m;          // codes 0, 4
  let b = unpack2x16float(((q >> 4u) & 0x000F000Fu) | 0x64006400u) - m;  // codes 1, 5
  let c = unpack2x16float(((q >> 8u) & 0x000F000Fu) | 0x64006400u) - m;  // codes 2, 6
  let d = unpack2x16float(((q >> 12u) & 0x000F000Fu) | 0x64006400u) - m; // codes 3, 7
  return dot(vec4<f32>(a.x, b.x, c.x, d.x), lo) + dot(vec4<f32>(a.y, b.y, c.y, d.y), hi);
}
