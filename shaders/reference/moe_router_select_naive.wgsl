// Part 2 of 2 of the simplest correct MoE router (`noaux_tc`, docs/model.md §6.1-6.3), kept beside the optimised
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
//   0  bias     array<f32>  [E]      read: e_score_correction_bias
//   1  logits   array<f32>  [T, E]   read
//   2  ids      array<u32>  [T, K]   written: by descending biased score
//   3  weights  array<f32>  [T, K]   written
//   4  params   uniform     { tokens, hidden, experts, topk, groups, topk_group, norm (0/1), scaling: f32 }
// Workgroup: WG (override, default 64) invocations, one token each; dispatch ceil(T / WG).
// CPU counterpart: router.ts moeRoute.

override WG: u32 = 64u;

// #include "naive_router.wgsl"

@group(0) @binding(0) var<storage, read> bias: array<f32>;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const NONE: u32 = 0xFFFFFFFFu;

fn score(t: u32, e: u32) -> f32 {
  return 1.0 / (1.0 + exp(-logits[t * params.experts + e]));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x;
  if (t >= params.tokens) { return; }
  let per = params.experts / params.groups;
  var kept: array<u32, 64>;
  if (params.groups > 1u) {
    var gscore: array<f32, 64>;
    for (var g = 0u; g < params.groups; g++) {
      var top1 = -3.4e38;
      var top2 = -3.4e38;
      for (var e = g * per; e < (g + 1u) * per; e++) {
        let b = score(t, e) + bias[e];
        if (b > top1) { top2 = top1; top1 = b; } else if (b > top2) { top2 = b; }
      }
      gscore[g] = top1 + top2;
      kept[g] = 0u;
    }
    for (var r = 0u; r < params.topk_group; r++) {
      var best = NONE;
      for (var g = 0u; g < params.groups; g++) {
        if (kept[g] == 0u && (best == NONE || gscore[g] > gscore[best])) { best = g; }
      }
      kept[best] = 1u;
    }
  } else {
    kept[0] = 1u;
  }
  var chosen: array<u32, 32>;
  var sum = 0.0;
  for (var k = 0u; k < params.topk; k++) {
    var best = NONE;
    var bestv = 0.0;
    for (var e = 0u; e < params.experts; e++) {
      if (kept[e / per] == 0u) { continue; }
      var taken = false;
      for (var j = 0u; j < k; j++) { if (chosen[j] == e) { taken = true; } }
      if (taken) { continue; }
      let b = score(t, e) + bias[e];
      if (best == NONE || b > bestv) { best = e; bestv = b; }
    }
    chosen[k] = best;
    sum += score(t, best);
  }
  let norm = select(1.0, sum, params.norm != 0u);
  for (var k = 0u; k < params.topk; k++) {
    ids[t * params.topk + k] = chosen[k];
    weights[t * params.topk + k] = score(t, chosen[k]) / norm * params.scaling;
  }
}
