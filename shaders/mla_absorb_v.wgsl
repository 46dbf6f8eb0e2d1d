// mla_absorb_v.wgsl — applies v_up to the latent attention output (docs/model.md §4.5), FP8 kv_b read directly:
//   out[t, h·Dv + j] = Σ_r W_UV[h][j, r] · oLat[t, h, r]
// with W_UV[h][j, r] = e4m3(kv_b[h·(Dn+Dv) + Dn + j, r]) · scale[(h·(Dn+Dv) + Dn + j) / 128, r / 128].
// A mat-vec per head: one thread per output row j and TT tokens (each weight word decoded once, used TT
// times); u32 loads of 4 codes, the block scale multiplies each 128-column partial dot; the ragged last word
// of a row (R % 4 != 0) is masked so the input is never read past R.
//
// Bindings (group 0):
//   0  oLat    array<f32>  [T, H, R]              normalised latent attention output
//   1  w       array<u32>  [H·(Dn+Dv), rowStride] kv_b_proj FP8 codes, padded rows (ops/fp8-layout.ts)
//   2  scale   array<f32>  [⌈H(Dn+Dv)/128⌉, scaleCols]
//   3  out     array<f32>  [T, H·Dv]              written (the o_proj input)
//   4  params  uniform     Params
// Workgroup: WG threads (override, default 64), thread = one row j × TT tokens (parameter, ≤ 8), no barriers.
// Dispatch: (⌈Dv / WG⌉, H, ⌈T / TT⌉).
// CPU counterpart: model/reference.ts attentionAbsorbed (the W_UV ō product).

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
  scaleCols: u32,  // ⌈R / 128⌉
  TT: u32,         // tokens per thread (≤ 8)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> oLat: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// four E4M3FN codes of a word -> f32 (docs/kernels.md §3.1 (A), exact incl. subnormals; NaN codes give ±480)
// #include "fp8x4.wgsl"

// input word `word` of (token t, head h): 4 floats, lanes at or past R read as 0
fn x4(t: u32, h: u32, word: u32) -> vec4<f32> {
  let o = (t * p.H + h) * p.R;
  let c = word * 4u;
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
  let srow = (row / 128u) * p.scaleCols;
  let words = (p.R + 3u) / 4u;
  let tLast = p.T - 1u;

  var acc: array<f32, MAX_TT>;
  for (var tt = 0u; tt < MAX_TT; tt++) { acc[tt] = 0.0; }
  for (var w0 = 0u; w0 < words; w0 += 32u) { // 32 words = one 128-column scale block
    let w1 = min(words, w0 + 32u);
    // explicit zeroing: Dawn (webgpu 0.6.2, lavapipe AND SwiftShader) does not re-zero a loop-local `var`
    // declared without initializer on each iteration (it keeps the previous iteration's value; scalars too)
    var part: array<vec4<f32>, MAX_TT>;
    for (var tt = 0u; tt < MAX_TT; tt++) { part[tt] = vec4<f32>(0.0); }
    for (var wi = w0; wi < w1; wi++) {
      let wv = fp8x4(w[base + wi]);
      for (var tt = 0u; tt < TT; tt++) {
        part[tt] += wv * x4(min(t0 + tt, tLast), h, wi);
      }
    }
    let s = scale[srow + w0 / 32u];
    for (var tt = 0u; tt < TT; tt++) { acc[tt] += dot(part[tt], vec4<f32>(1.0)) * s; }
  }
  for (var tt = 0u; tt < TT; tt++) {
    let t = t0 + tt;
    if (t < p.T) { out[t * p.H * p.Dv + h * p.Dv + j] = acc[tt]; }
  }
}
