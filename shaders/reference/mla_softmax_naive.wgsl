// Part 2 of 3 of the simplest correct MLA decode attention in the absorbed form (docs/model.md §4.5, docs/kernels.md §3.6),
// kept beside the optimised mla_attention kernels so that `webmoe bench` measures the speedup. The three parts
// run in order in one pass (bench/naive.ts naiveMlaDecode); no split-KV, no online softmax, no reduction tree:
//   mla_scores_naive:  P[h, s]  = scale · (q[h, :] · cache[s, :])       over the full W = R + Dr width
//   mla_softmax_naive: P[h, :] ← softmax(P[h, :])                       one invocation per head, three sweeps
//   mla_combine_naive: out[h, d] = Σ_s P[h, s] · cache[s, d]            d < R (the latent part only)
// Legend: H heads, S cached tokens (this one included), R kv_lora_rank (512), Dr rope dim (64), W = R + Dr.
// The query row is [q_nope · W_UK (R) | q_pe after RoPE (Dr)]; the cache row is [c_kv (R) | k_pe (Dr)]
// (src/gpu/ops/attention.ts fusedCacheView), so one dot product over W gives q_nope·k_nope + q_pe·k_pe.
//
// Bindings (group 0):
//   0  p       array<f32>  [H, S]   read and written: scores in, probabilities out
//   1  params  uniform     { heads, tokens = S, width = W, rank = R, scale: f32 }
// Workgroup: WG (override, default 64) invocations, one head each; dispatch ceil(H / WG).
// CPU counterpart: reference.ts softmaxInPlace.

override WG: u32 = 64u;

// #include "naive_mla.wgsl"

@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let h = gid.x;
  if (h >= params.heads) { return; }
  let row = h * params.tokens;
  var m = p[row];
  for (var s = 1u; s < params.tokens; s++) { m = max(m, p[row + s]); }
  var sum = 0.0;
  for (var s = 0u; s < params.tokens; s++) {
    let e = exp(p[row + s] - m);
    p[row + s] = e;
    sum += e;
  }
  for (var s = 0u; s < params.tokens; s++) { p[row + s] = p[row + s] / sum; }
}
