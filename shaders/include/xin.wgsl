// shaders/include/xin.wgsl: spliced into kernels by scripts/embed-shaders.ts at `// #include "xin.wgsl"`.
// Loads of the activation row a weight row multiplies; the including kernel declares `xin: array<f32>`.

// xin[xo + c .. xo + c + 3], lanes at or past n read as 0 (c < n: never reads past the row)
fn x4(xo: u32, c: u32, n: u32) -> vec4<f32> {
  if (c + 4u <= n) { return vec4<f32>(xin[xo + c], xin[xo + c + 1u], xin[xo + c + 2u], xin[xo + c + 3u]); }
  let last = xo + n - 1u;
  return vec4<f32>(xin[xo + c], select(0.0, xin[min(xo + c + 1u, last)], c + 1u < n),
                   select(0.0, xin[min(xo + c + 2u, last)], c + 2u < n), 0.0);
}

// xin[xo + c .. xo + c + 3], any c: lanes at or past n read as 0
fn x4m(xo: u32, c: u32, n: u32) -> vec4<f32> {
  if (c + 4u <= n) { return vec4<f32>(xin[xo + c], xin[xo + c + 1u], xin[xo + c + 2u], xin[xo + c + 3u]); }
  let last = xo + n - 1u;
  return vec4<f32>(select(0.0, xin[min(xo + c, last)], c < n), select(0.0, xin[min(xo + c + 1u, last)], c + 1u < n),
                   select(0.0, xin[min(xo + c + 2u, last)], c + 2u < n), 0.0);
}
