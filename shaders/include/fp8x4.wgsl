// shaders/include/fp8x4.wgsl: spliced into kernels by scripts/embed-shaders.ts at `// #include "fp8x4.wgsl"`.
// Four E4M3FN codes packed little-endian in a u32 -> vec4<f32>, exact (docs/kernels.md §3.1 (A), vectorised).
// Subnormals are built as m * 2^-9, never as f32 denormals (GPUs may flush them). NaN codes 0x7F/0xFF
// decode to +-480 (weights never hold them).
fn fp8x4(word: u32) -> vec4<f32> {
  let b = vec4<u32>(word & 0xFFu, (word >> 8u) & 0xFFu, (word >> 16u) & 0xFFu, word >> 24u);
  let s = (b & vec4<u32>(0x80u)) << vec4<u32>(24u);
  let e = (b >> vec4<u32>(3u)) & vec4<u32>(0xFu);
  let m = b & vec4<u32>(7u);
  let normal = bitcast<vec4<f32>>(s | ((e + vec4<u32>(120u)) << vec4<u32>(23u)) | (m << vec4<u32>(20u)));
  let sub = bitcast<vec4<f32>>(s | bitcast<vec4<u32>>(vec4<f32>(m) * 0.001953125));
  return select(normal, sub, e == vec4<u32>(0u));
}
