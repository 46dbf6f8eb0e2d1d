// shaders/include/qfma4_vec4.wgsl: spliced by format_fp8.wgsl and format_int4.wgsl (the tiled kernels' fma, format
// interface qfma4). fma4: a + (w · x0, w · x1, w · x2, w · x3) for 4 columns w, one fma per (column, token) in
// column order, the 4 tokens in the vec4 lanes (a mul + add pair would issue twice the instructions).
fn fma4(a: vec4<f32>, w: vec4<f32>, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> vec4<f32> {
  var r = fma(vec4<f32>(w.x), vec4<f32>(x0.x, x1.x, x2.x, x3.x), a);
  r = fma(vec4<f32>(w.y), vec4<f32>(x0.y, x1.y, x2.y, x3.y), r);
  r = fma(vec4<f32>(w.z), vec4<f32>(x0.z, x1.z, x2.z, x3.z), r);
  return fma(vec4<f32>(w.w), vec4<f32>(x0.w, x1.w, x2.w, x3.w), r);
}
