// Part 1 of 2 of the simplest correct routed-expert SwiGLU for one decode token, driven by the router's ids on
// the GPU (no readback), kept beside the optimised moe_gateup_id / moe_down_id so that `webmoe bench` measures
// the speedup. Per shard of experts the two parts run in order (bench/naive.ts naiveExperts):
//   moe_gateup_id_naive: h[k, f] = silu(gate_e[f, :] · x) · (up_e[f, :] · x)   e = ids[k]; one invocation per (f, k)
//   moe_down_id_naive:   out[d] (+)= Σ_k w[k] · (down_e[d, :] · h[k, :])         one invocation per d
// Every weight is decoded and scaled on its own (no block-scale folding, no wide loads).
// Legend: D hidden, F moe_intermediate_size, K experts per token.
// Weights use the stacks of src/gpu/ops/fp8-layout.ts: gate_up interleaves [gate_e, up_e] per expert
// (matrix 2e = gate [F, D], 2e + 1 = up [F, D]); down is matrix e [D, F]; rows padded to `stride` words.
// A buffer may hold only a shard of the experts (ids first .. first + count - 1, fp8-layout.ts expertShards):
// each dispatch handles the k whose expert is in its shard; down of the first shard writes `out`, later
// shards add to it (accumulate = 1). Indices are u32: 2 · count · F · strideD must stay below 2^32.
// The shared expert is not part of this kernel.
//
// Bindings (group 0):
//   0  x        array<f32>  [D]                          read
//   1  ids      array<u32>  [K]                          read: expert ids from the router
//   2  gu       array<u32>  [2 count, F, strideD]        read: gate_up codes of the shard
//   3  gu_s     array<f32>  [2 count, ceil(F/128), ceil(D/128)]  read
//   4  h        array<f32>  [K, F]                       written: silu(gate) · up per slot
//   5  params   uniform     { hidden = D, inter = F, topk = K, first, count, strideD, strideF, accumulate }
// Workgroup: WG (override, default 64) invocations along F; dispatch (ceil(F / WG), K).
// CPU counterpart: reference.ts ffn (its silu(gate·x) ⊙ up·x).

override WG: u32 = 64u;

// #include "naive_experts.wgsl"

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> gu: array<u32>;
@group(0) @binding(3) var<storage, read> gu_s: array<f32>;
@group(0) @binding(4) var<storage, read_write> h: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let f = gid.x;
  let k = gid.y;
  if (f >= params.inter || k >= params.topk) { return; }
  let e = ids[k];
  if (!in_shard(e)) { return; }
  let D = params.hidden;
  let F = params.inter;
  let scols = (D + 127u) / 128u;
  let mscales = ((F + 127u) / 128u) * scols; // scales per matrix
  let mwords = F * params.stride_d;          // words per matrix
  let g_m = 2u * (e - params.first);         // gate matrix; up is g_m + 1
  var g = 0.0;
  var u = 0.0;
  for (var d = 0u; d < D; d++) {
    let word = f * params.stride_d + (d >> 2u);
    let sidx = (f / 128u) * scols + d / 128u;
    g += e4m3(byte_of(gu[g_m * mwords + word], d)) * gu_s[g_m * mscales + sidx] * x[d];
    u += e4m3(byte_of(gu[(g_m + 1u) * mwords + word], d)) * gu_s[(g_m + 1u) * mscales + sidx] * x[d];
  }
  h[k * F + f] = g / (1.0 + exp(-g)) * u;
}

