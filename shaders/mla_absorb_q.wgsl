// mla_absorb_q.wgsl — absorbs k_up into the queries (docs/model.md §4.5), reading kv_b_proj's FP8 codes directly:
//   qLat[t, h, r]     = Σ_d W_UK[h][d, r] · q[t, h, d]     r < R      (q̃ = W_UK[h]^T q_nope)
//   qLat[t, h, R + i] = q[t, h, Dn + i]                    i < Dr     (q_pe copied: one query row per head)
// with W_UK[h][d, r] = e4m3(kv_b[h·(Dn+Dv) + d, r]) · scale[(h·(Dn+Dv) + d) / 128, r / 128].
// A transposed mat-vec: each thread owns 4 adjacent latent columns (one u32 word of every row, so 4 codes
// per load and all 4 columns in the same 128-column scale block) and TT tokens (each weight word is decoded
// once and used for TT tokens); the block scale multiplies each 128-row partial sum.
//
// Bindings (group 0):
//   0  q       array<f32>  [T, H, Dn + Dr]        q_b_proj output, q_pe already rotated
//   1  w       array<u32>  [H·(Dn+Dv), rowStride] kv_b_proj FP8 codes, padded rows (ops/fp8-layout.ts)
//   2  scale   array<f32>  [⌈H(Dn+Dv)/128⌉, scaleCols]
//   3  qLat    array<f32>  [T, H, R + Dr]         written
//   4  params  uniform     Params
// Workgroup: WG threads (override, default 64), thread = one word (4 columns) × TT tokens (parameter, ≤ 8).
// Dispatch: (⌈⌈R/4⌉ / WG⌉, H, ⌈T / TT⌉).
// CPU counterpart: model/reference.ts attentionAbsorbed (the q̃ loop).

override WG: u32 = 64u;
const MAX_TT: u32 = 8u;

struct Params {
  T: u32,          // tokens
  H: u32,          // heads
  Dn: u32,         // qk_nope_head_dim
  Dr: u32,         // qk_rope_head_dim
  Dv: u32,         // v_head_dim
  R: u32,          // kv_lora_rank
  rowStride: u32,  // words per kv_b row
  scaleCols: u32,  // ⌈R / 128⌉
  TT: u32,         // tokens per thread (≤ 8)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> qLat: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// four E4M3FN codes of a word -> f32 (docs/kernels.md §3.1 (A), exact incl. subnormals; NaN codes give ±480)
// #include "fp8x4.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let h = wid.y;
  let TT = p.TT;
  let t0 = wid.z * TT;
  let H = p.H;
  let Dq = p.Dn + p.Dr;
  let L = p.R + p.Dr;

  // the rope half is a copy; the first workgroup column does it
  if (wid.x == 0u) {
    for (var tt = 0u; tt < TT; tt++) {
      let t = t0 + tt;
      if (t < p.T) {
        for (var i = lid; i < p.Dr; i += WG) {
          qLat[(t * H + h) * L + p.R + i] = q[(t * H + h) * Dq + p.Dn + i];
        }
      }
    }
  }

  let word = gid.x;
  if (word >= (p.R + 3u) / 4u) { return; }
  let cb = (word * 4u) / 128u; // scale column block of these 4 columns
  let row0 = h * (p.Dn + p.Dv);
  let tLast = p.T - 1u;

  var acc: array<vec4<f32>, MAX_TT>;
  for (var tt = 0u; tt < MAX_TT; tt++) { acc[tt] = vec4<f32>(0.0); }
  var d0 = 0u;
  while (d0 < p.Dn) {
    // rows d0 .. d1 share one scale row block
    let d1 = min(p.Dn, ((row0 + d0) / 128u + 1u) * 128u - row0);
    // explicit zeroing: Dawn (webgpu 0.6.2, lavapipe AND SwiftShader) does not re-zero a loop-local `var`
    // declared without initializer on each iteration (it keeps the previous iteration's value; scalars too)
    var part: array<vec4<f32>, MAX_TT>;
    for (var tt = 0u; tt < MAX_TT; tt++) { part[tt] = vec4<f32>(0.0); }
    for (var d = d0; d < d1; d++) {
      let wv = fp8x4(w[(row0 + d) * p.rowStride + word]);
      for (var tt = 0u; tt < TT; tt++) {
        let t = min(t0 + tt, tLast); // rows past T compute a duplicate, never written
        part[tt] += wv * q[(t * H + h) * Dq + d];
      }
    }
    let s = scale[((row0 + d0) / 128u) * p.scaleCols + cb];
    for (var tt = 0u; tt < TT; tt++) { acc[tt] += part[tt] * s; }
    d0 = d1;
  }
  // padding bytes decode to 0, but only columns < R exist in qLat's row
  let n = min(4u, p.R - word * 4u);
  for (var tt = 0u; tt < TT; tt++) {
    let t = t0 + tt;
    if (t < p.T) {
      let o = (t * H + h) * L + word * 4u;
      let a = acc[tt];
      qLat[o] = a.x;
      if (n > 1u) { qLat[o + 1u] = a.y; }
      if (n > 2u) { qLat[o + 2u] = a.z; }
      if (n > 3u) { qLat[o + 3u] = a.w; }
    }
  }
}
