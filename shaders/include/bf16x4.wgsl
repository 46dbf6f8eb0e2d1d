// shaders/include/bf16x4.wgsl: spliced into kernels by scripts/embed-shaders.ts at `// #include "bf16x4.wgsl"`.
// Four BF16 values packed two per u32 (w.x low/high, w.y low/high) -> vec4<f32>, exact (bits << 16).
fn bf16x4(lo: u32, hi: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(lo << 16u, lo & 0xFFFF0000u, hi << 16u, hi & 0xFFFF0000u));
}
