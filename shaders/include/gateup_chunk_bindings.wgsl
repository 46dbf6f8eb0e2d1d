// shaders/include/gateup_chunk_bindings.wgsl: bindings 2-8 of the gate/up expert kernels that read codes as chunks CW
// of their format (moe_gateup_id_wide and moe_gateup_union through gateup_wide_io.wgsl, moe_gateup_tiled): the
// combine weights, the routed and shared stacks, h and the Params. Binding 0 is xin, 1 where the kernel finds its
// experts (ids or plan).
@group(0) @binding(2) var<storage, read> wts: array<f32>;
@group(0) @binding(3) var<storage, read> codes: array<CW>;
@group(0) @binding(4) var<storage, read> scales: array<f32>;
@group(0) @binding(5) var<storage, read> shCodes: array<CW>;
@group(0) @binding(6) var<storage, read> shScales: array<f32>;
@group(0) @binding(7) var<storage, read_write> h: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;
