// Part 2 of 2 of the simplest correct routed-expert SwiGLU for one decode token, driven by the router's ids on
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
//   0  ids      array<u32>  [K]                          read: expert ids from the router
//   1  weights  array<f32>  [K]                          read: combine weights
//   2  dn       array<u32>  [count, D, strideF]          read: down codes of the shard
//   3  dn_s     array<f32>  [count, ceil(D/128), ceil(F/128)]    read
//   4  h        array<f32>  [K, F]                       read
//   5  out      array<f32>  [D]                          written (accumulate = 0) or added to
//   6  params   uniform     { hidden = D, inter = F, topk = K, first, count, strideD, strideF, accumulate }
// Workgroup: WG (override, default 64) invocations along D; dispatch ceil(D / WG).
// CPU counterpart: reference.ts moe (routed part): Σ_k w_k · down_e(h_k).

override WG: u32 = 64u;

// #include "naive_experts.wgsl"

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read> dn: array<u32>;
@group(0) @binding(3) var<storage, read> dn_s: array<f32>;
@group(0) @binding(4) var<storage, read> h: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let d = gid.x;
  if (d >= params.hidden) { return; }
  let D = params.hidden;
  let F = params.inter;
  let scols = (F + 127u) / 128u;
  let mscales = ((D + 127u) / 128u) * scols;
  let mwords = D * params.stride_f;
  var acc = 0.0;
  for (var k = 0u; k < params.topk; k++) {
    let e = ids[k];
    if (!in_shard(e)) { continue; }
    let m = e - params.first;
    var y = 0.0;
    for (var f = 0u; f < F; f++) {
      let word = d * params.stride_f + (f >> 2u);
      y += e4m3(byte_of(dn[m * mwords + word], f)) * dn_s[m * mscales + (d / 128u) * scols + f / 128u] * h[k * F + f];
    }
    acc += weights[k] * y;
  }
  if (params.accumulate != 0u) { out[d] += acc; } else { out[d] = acc; }
}
