// shaders/include/e4m3_to_f32.wgsl: spliced into kernels by scripts/embed-shaders.ts at `// #include "e4m3_to_f32.wgsl"`.
// One E4M3FN code -> f32, exact, the plainest form (for the naive twins): rebias 7 -> 127, subnormals m * 2^-9.
fn e4m3_to_f32(b: u32) -> f32 {
  let s = (b & 0x80u) << 24u;
  let e = (b >> 3u) & 0xFu;
  let m = b & 7u;
  let normal = bitcast<f32>(s | ((e + 120u) << 23u) | (m << 20u));
  let sub = bitcast<f32>(s | bitcast<u32>(f32(m) * 0.001953125));
  return select(normal, sub, e == 0u);
}
