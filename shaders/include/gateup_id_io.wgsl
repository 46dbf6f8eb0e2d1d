// shaders/include/gateup_id_io.wgsl: Params and bindings of the by-id gate/up kernels that read codes as u32 words
// (moe_gateup_id, moe_gateup_id_subgroup; the binding table is in their headers).
// #include "gateup_params.wgsl"

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
// #include "gateup_bindings.wgsl"
