// mla_decode_naive.wgsl — the simplest correct MLA decode attention in the absorbed form (model-spec §4.5,
// kernels.md §3.6), kept beside the optimised mla_decode kernel so that `webmoe bench` measures the speedup.
// Three entry points, dispatched in this order in one pass (no split-KV, no online softmax, no reduction tree):
//   scores:  P[h, s]  = scale · (q[h, :] · cache[s, :])        over the full W = Rkv + Dr width
//   softmax: P[h, :] ← softmax(P[h, :])                        one invocation per head, three sweeps
//   combine: out[h, d] = Σ_s P[h, s] · cache[s, d]             d < Rkv (the latent part only)
// Legend: H heads, S cached tokens (this one included), Rkv kv_lora_rank (512), Dr rope dim (64), W = Rkv + Dr.
// The query row is [q_nope · W_UK (Rkv) | q_pe after RoPE (Dr)]; the cache row is [c_kv (Rkv) | k_pe (Dr)],
// so one dot product over W gives q_nope·k_nope + q_pe·k_pe of the naive form.
//
// Bindings (group 0):
//   0  q       array<f32>  [H, W]   read
//   1  cache   array<f32>  [S, W]   read: the latent cache of one layer
//   2  p       array<f32>  [H, S]   written (scores, then probabilities): scratch
//   3  out     array<f32>  [H, Rkv] written: attention output in the latent space (before W_UV)
//   4  params  uniform     { heads, tokens = S, width = W, rank = Rkv, scale: f32 }
// Workgroup: WG (override, default 64). Dispatch: scores (ceil(S / WG), H); softmax ceil(H / WG);
// combine (ceil(Rkv / WG), H).
// CPU counterpart: reference.ts attentionAbsorbed (before its W_UV step).

override WG: u32 = 64u;

struct Params {
  heads: u32,  // H
  tokens: u32, // S, in tokens
  width: u32,  // W = Rkv + Dr, in elements
  rank: u32,   // Rkv, in elements
  scale: f32,  // softmax scale (Dq^-0.5 · mscale²)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> cache: array<f32>;
@group(0) @binding(2) var<storage, read_write> p: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn scores(@builtin(global_invocation_id) gid: vec3<u32>) {
  let s = gid.x;
  let h = gid.y;
  if (s >= params.tokens || h >= params.heads) { return; }
  var acc = 0.0;
  for (var i = 0u; i < params.width; i++) {
    acc += q[h * params.width + i] * cache[s * params.width + i];
  }
  p[h * params.tokens + s] = acc * params.scale;
}

@compute @workgroup_size(WG)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>) {
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

@compute @workgroup_size(WG)
fn combine(@builtin(global_invocation_id) gid: vec3<u32>) {
  let d = gid.x;
  let h = gid.y;
  if (d >= params.rank || h >= params.heads) { return; }
  var acc = 0.0;
  for (var s = 0u; s < params.tokens; s++) {
    acc += p[h * params.tokens + s] * cache[s * params.width + d];
  }
  out[h * params.rank + d] = acc;
}
