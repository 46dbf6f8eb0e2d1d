// shaders/include/e4m3_to_f32.wgsl: spliced into kernels by scripts/embed-shaders.ts at `// #include "e4m3_to_f32.wgsl"`.
// One E4M3FN code -> f32, exact: the name the naive twins use for e4m3() (include/e4m3.wgsl).
// #include "e4m3.wgsl"
fn e4m3_to_f32(b: u32) -> f32 { return e4m3(b); }
