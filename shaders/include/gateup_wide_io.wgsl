// shaders/include/gateup_wide_io.wgsl: Params and bindings of the gate/up kernels that read codes as chunks CW of
// their format (moe_gateup_id_wide, moe_gateup_union; the binding table is in their headers).
// #include "gateup_params.wgsl"

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
// #include "gateup_chunk_bindings.wgsl"
