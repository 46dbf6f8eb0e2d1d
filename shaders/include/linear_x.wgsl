// shaders/include/linear_x.wgsl: the x loads of the precision families fp8_gemv and fp8_gemm: the 4 values a word of
// codes multiplies, as the precision's XV (precision_*.wgsl xv: f16 rounds them).
fn x4(at: u32) -> XV {
  return xv(vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]));
}

// the last, partial word of a row (rem = cols % 4 columns): missing columns read as 0
fn x4tail(at: u32, rem: u32) -> XV {
  var v = vec4<f32>(x[at], 0.0, 0.0, 0.0);
  if (rem > 1u) { v.y = x[at + 1u]; }
  if (rem > 2u) { v.z = x[at + 2u]; }
  return xv(v);
}
