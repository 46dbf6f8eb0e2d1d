// shaders/include/int4x8.wgsl: spliced by format_int4.wgsl and bench_int4_decode.wgsl.
// The 8 INT4 codes of a word as u - 8, exact, with the f32 bit trick: u in the low mantissa bits of 2^23 is the f32
// 2^23 + u, minus 2^23 + 8 (columns 0-3 in [0], 4-7 in [1]). Measured on lavapipe at Kimi widths, interleaved with
// FP8: this ran the wide expert kernels at ~0.73-0.79x FP8's time, the f16 form (unpack2x16float of 0x6400 | u,
// minus 1032) at ~0.79-0.88x.
fn int4x8(q: u32) -> mat2x4<f32> {
  let m = vec4<u32>(0xFu);
  let e = vec4<u32>(0x4B000000u);
  let a = bitcast<vec4<f32>>(((vec4<u32>(q) >> vec4<u32>(0u, 4u, 8u, 12u)) & m) | e) - vec4<f32>(8388616.0);
  let b = bitcast<vec4<f32>>(((vec4<u32>(q) >> vec4<u32>(16u, 20u, 24u, 28u)) & m) | e) - vec4<f32>(8388616.0);
  return mat2x4<f32>(a, b);
}

// Σ_j (u_j - 8) · x_j over the 8 codes of q (codes 0-3 against lo, 4-7 against hi)
fn udot8(q: u32, lo: vec4<f32>, hi: vec4<f32>) -> f32 {
  let w = int4x8(q);
  return dot(w[0], lo) + dot(w[1], hi);
}
