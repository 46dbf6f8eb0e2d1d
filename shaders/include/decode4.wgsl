// shaders/include/decode4.wgsl: spliced into kernels by scripts/embed-shaders.ts at `// #include "decode4.wgsl"`.
// Four E4M3FN codes of one u32 -> vec4<f32> through the scalar e4m3() of the including kernel.
fn decode4(q: u32) -> vec4<f32> {
  return vec4<f32>(e4m3(q), e4m3(q >> 8u), e4m3(q >> 16u), e4m3(q >> 24u));
}
