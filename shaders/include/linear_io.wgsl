// shaders/include/linear_io.wgsl: the Params and bindings of the dense FP8 linear kernels that read codes as u32
// words (fp8_gemv, fp8_gemv_f16, fp8_gemv_subgroup, fp8_gemm, fp8_gemm_f16; the binding table is in their headers).
// #include "linear.wgsl"

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
