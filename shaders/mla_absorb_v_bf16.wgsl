// mla_absorb_v_bf16.wgsl — BF16 twin of mla_absorb_v.wgsl: applies v_up to the latent attention output
// (docs/model.md §4.5), BF16 kv_b read directly (checkpoints without quantization_config):
//   out[t, h·Dv + j] = Σ_r W_UV[h][j, r] · oLat[t, h, r]
// with W_UV[h][j, r] = bf16(kv_b[h·(Dn+Dv) + Dn + j, r]) (exact: f32 bits = bf16 << 16; no scales).
// The FP8 kernel's structure: a mat-vec per head, one thread per output row j and TT tokens (each weight
// group decoded once, used TT times); a 4-column group is two u32 words of 2 BF16 codes; the ragged last
// group of a row (R % 4 != 0) is masked on the input side, so oLat is never read past R (its weight halves
// are padding zeros).
//
// Bindings (group 0):
//   0  oLat    array<f32>  [T, H, R]              normalised latent attention output
//   1  w       array<u32>  [H·(Dn+Dv), rowStride] kv_b_proj BF16 codes, 2 per word, padded rows (ops/fp8-layout.ts)
//   2  out     array<f32>  [T, H·Dv]              written (the o_proj input)
//   3  params  uniform     Params (the FP8 kernel's, scaleCols unused)
// Workgroup: WG threads (override, default 64), thread = one row j × TT tokens (parameter, ≤ 8), no barriers.
// Dispatch: (⌈Dv / WG⌉, H, ⌈T / TT⌉).
// CPU counterpart: model/reference.ts attentionAbsorbed (the W_UV ō product) on bf16ArrayToF32(kv_b).

override WG: u32 = 64u;
const MAX_TT: u32 = 8u;

struct Params {
  T: u32,          // tokens
  H: u32,          // heads
  Dn: u32,         // qk_nope_head_dim
  Dr: u32,         // qk_rope_head_dim (unused)
  Dv: u32,         // v_head_dim
  R: u32,          // kv_lora_rank
  rowStride: u32,  // words per kv_b row
  _unused: u32,    // scaleCols of the FP8 kernel
  TT: u32,         // tokens per thread (≤ 8)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> oLat: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// four BF16 codes (two words, low half first) -> f32, exact
// #include "bf16x4.wgsl"

// input group `g` (columns 4g .. 4g+3) of (token t, head h): lanes at or past R read as 0
fn x4(t: u32, h: u32, g: u32) -> vec4<f32> {
  let o = (t * p.H + h) * p.R;
  let c = g * 4u;
  if (c + 4u <= p.R) {
    return vec4<f32>(oLat[o + c], oLat[o + c + 1u], oLat[o + c + 2u], oLat[o + c + 3u]);
  }
  let last = o + p.R - 1u;
  return vec4<f32>(oLat[o + c],
                   select(0.0, oLat[min(o + c + 1u, last)], c + 1u < p.R),
                   select(0.0, oLat[min(o + c + 2u, last)], c + 2u < p.R),
                   0.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let j = gid.x;
  let h = wid.y;
  let TT = p.TT;
  let t0 = wid.z * TT;
  if (j >= p.Dv) { return; }
  let row = h * (p.Dn + p.Dv) + p.Dn + j;
  let base = row * p.rowStride;
  let groups = (p.R + 3u) / 4u;
  let tLast = p.T - 1u;

  // explicit zeroing (Dawn does not re-zero loop-local vars; kept at function scope here)
  var part: array<vec4<f32>, MAX_TT>;
  for (var tt = 0u; tt < MAX_TT; tt++) { part[tt] = vec4<f32>(0.0); }
  for (var g = 0u; g < groups; g++) {
    let wv = bf16x4(w[base + 2u * g], w[base + 2u * g + 1u]);
    for (var tt = 0u; tt < TT; tt++) {
      part[tt] += wv * x4(min(t0 + tt, tLast), h, g);
    }
  }
  for (var tt = 0u; tt < TT; tt++) {
    let t = t0 + tt;
    if (t < p.T) { out[t * p.H * p.Dv + h * p.Dv + j] = dot(part[tt], vec4<f32>(1.0)); }
  }
}
