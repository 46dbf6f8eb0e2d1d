// shaders/include/naive_linear.wgsl: the bindings of the naive dense FP8 twins (fp8_gemv_naive, fp8_gemm_naive; the
// binding table and Params are in their headers) and their weight lookup.
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// #include "naive_fp8.wgsl"

// code of W[r, c]
fn code(r: u32, c: u32) -> u32 {
  return byte_of(w[r * params.stride + (c >> 2u)], c);
}
