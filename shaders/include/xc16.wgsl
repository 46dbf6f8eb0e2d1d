// shaders/include/xc16.wgsl: spliced by the format includes whose wide-kernel chunk spans 16 columns (FP8, INT4).
// One 16-column chunk of x, in registers; xc_tail masks columns at or past n to 0.
struct XC { a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32> }
// one chunk's 16 weights decoded (the format's cdec), for reuse across tokens
struct CD { a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32> }
fn xc_full(at: u32) -> XC { return XC(x4(at, 0u, 4u), x4(at + 4u, 0u, 4u), x4(at + 8u, 0u, 4u), x4(at + 12u, 0u, 4u)); }
fn xc_tail(xo: u32, c: u32, n: u32) -> XC { return XC(x4m(xo, c, n), x4m(xo, c + 4u, n), x4m(xo, c + 8u, n), x4m(xo, c + 12u, n)); }
// a chunk from four vec4s (fp8_gemv_wide XS: x staged in workgroup memory)
fn xc4(a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32>) -> XC { return XC(a, b, c, d); }
