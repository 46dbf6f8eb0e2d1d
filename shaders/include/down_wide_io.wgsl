// shaders/include/down_wide_io.wgsl: Params and bindings of the down kernels that read codes as chunks CW of their
// format (moe_down_id_wide, moe_down_union; the binding table is in their headers).
// #include "down_params.wgsl"

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> codes: array<CW>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read> shCodes: array<CW>;
@group(0) @binding(5) var<storage, read> shScales: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;
