// shaders/include/e4m3.wgsl: spliced into kernels by scripts/embed-shaders.ts at `// #include "e4m3.wgsl"`.
// One E4M3FN code (low 8 bits of b) -> f32, exact (docs/kernels.md §3.1 (A)): rebias the exponent 7 -> 127;
// subnormals as m * 2^-9, never an f32 denormal. NaN codes 0x7F/0xFF decode to +-480.
fn e4m3(b: u32) -> f32 {
  let s = (b & 0x80u) << 24u;
  let e = (b >> 3u) & 0xFu;
  let m = b & 7u;
  let normal = bitcast<f32>(s | ((e + 120u) << 23u) | (m << 20u));
  let sub = bitcast<f32>(s | bitcast<u32>(f32(m) * 0.001953125));
  return select(normal, sub, e == 0u);
}
