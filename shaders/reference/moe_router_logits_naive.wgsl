// Part 1 of 2 of the simplest correct MoE router (`noaux_tc`, docs/model.md §6.1-6.3), kept beside the optimised
// bf16_gemv + moe_router so that `webmoe bench` measures the speedup. The two parts run in order in one pass
// (bench/naive.ts naiveRouter):
//   moe_router_logits_naive: L[t, e] = Σ_d bf16(G[e, d]) · x[t, d]          one invocation per (expert, token)
//   moe_router_select_naive: per token, one invocation does all of it, serially:
//           s_e = sigmoid(L[t, e]);  b_e = s_e + bias_e (selection only)
//           group score = sum of the 2 largest b_e of each of the G groups; keep the TG best groups
//           ids = the K largest b_e in kept groups (ties: lower index); w = s / Σ s (if norm) · routed_scale
// Legend: T tokens, D hidden, E routed experts, K experts per token, G groups (≤ 64), TG groups kept; K ≤ 32.
//
// Bindings (group 0):
//   0  x        array<f32>  [T, D]        read
//   1  gate     array<u32>  [E, D / 2]    read: BF16 [E, D] row-major, 2 per u32, little-endian
//   2  logits   array<f32>  [T, E]        written
//   3  params   uniform     { tokens, hidden, experts, topk, groups, topk_group, norm (0/1), scaling: f32 }
// Workgroup: WG (override, default 64) invocations along E; dispatch (ceil(E / WG), T).
// CPU counterpart: reference.ts routerLogits.

override WG: u32 = 64u;

// #include "naive_router.wgsl"

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gate: array<u32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

fn bf16(i: u32) -> f32 {
  let word = gate[i >> 1u];
  return bitcast<f32>(select(word << 16u, word & 0xFFFF0000u, (i & 1u) == 1u));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let e = gid.x;
  let t = gid.y;
  if (e >= params.experts || t >= params.tokens) { return; }
  var acc = 0.0;
  for (var d = 0u; d < params.hidden; d++) {
    acc += bf16(e * params.hidden + d) * x[t * params.hidden + d];
  }
  logits[t * params.experts + e] = acc;
}
