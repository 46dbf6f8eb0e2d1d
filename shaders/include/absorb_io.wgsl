// shaders/include/absorb_io.wgsl: what the absorb kernel families mla_absorb_q and mla_absorb_v share, spliced after
// their format include (FP8 or BF16 kv_b): the Params, the bindings, kv_b's 4-column groups and its scale lookup.
// Both read kv_b [H·(Dn+Dv), R] in the padded-row layout of ops/fp8-layout.ts, a thread's 4 adjacent columns at a
// time: one word of FP8 codes (all 4 in one 128-column scale block) or two words of BF16 codes (rows are padded to
// 16 bytes, so the second word of a row's last group is inside the row; padding decodes to 0).
const MAX_TT: u32 = 8u;

// #include "kvb_params.wgsl"

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// #include "kvb_w4.wgsl"
