// mla_decode_reduce.wgsl — merges the key-range splits of mla_attention.wgsl (flash-decoding):
//   M = max_s m_s;  ō[ρ, r] = Σ_s e^{m_s − M} o_s[ρ, r] / Σ_s e^{m_s − M} l_s
// Empty splits (no visible key) carry m = -3e38, l = 0, o = 0 and weigh exactly 0; split 0 always holds
// key 0, so M is finite.
//
// Bindings (group 0):
//   0  partO   array<f32>  [splits, rows, R]  unnormalised partial outputs
//   1  partML  array<f32>  [splits, rows, 2]  (m, l) per split and row
//   2  oLat    array<f32>  [rows, R]          written: normalised ō
//   3  params  uniform     Params
// Workgroup: WG threads (override, default 64), one latent dim each; dispatch (⌈R / WG⌉, rows).
// CPU counterpart: model/reference.ts attentionAbsorbed (softmax over all keys at once).

override WG: u32 = 64u;

struct Params {
  rows: u32,    // T · H
  R: u32,       // kv_lora_rank
  splits: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> partO: array<f32>;
@group(0) @binding(1) var<storage, read> partML: array<f32>;
@group(0) @binding(2) var<storage, read_write> oLat: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let r = gid.x;
  let row = wid.y;
  if (r >= p.R) { return; }
  var M = -3.0e38;
  for (var s = 0u; s < p.splits; s++) { M = max(M, partML[(s * p.rows + row) * 2u]); }
  var num = 0.0;
  var den = 0.0;
  for (var s = 0u; s < p.splits; s++) {
    let i = s * p.rows + row;
    let f = exp(partML[i * 2u] - M);
    num += f * partO[i * p.R + r];
    den += f * partML[i * 2u + 1u];
  }
  oLat[row * p.R + r] = num / den;
}
