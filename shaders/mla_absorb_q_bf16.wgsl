// mla_absorb_q_bf16.wgsl — BF16 twin of mla_absorb_q.wgsl: absorbs k_up into the queries (docs/model.md §4.5),
// reading kv_b_proj's BF16 codes directly (checkpoints without quantization_config):
//   qLat[t, h, r]     = Σ_d W_UK[h][d, r] · q[t, h, d]     r < R      (q̃ = W_UK[h]^T q_nope)
//   qLat[t, h, R + i] = q[t, h, Dn + i]                    i < Dr     (q_pe copied: one query row per head)
// with W_UK[h][d, r] = bf16(kv_b[h·(Dn+Dv) + d, r]) (exact: f32 bits = bf16 << 16; no scales).
// The FP8 kernel's structure: a transposed mat-vec where each thread owns 4 adjacent latent columns (two u32
// words of every row: 4 BF16 codes, decoded in registers) and TT tokens (each weight word decoded once and
// used for TT tokens). Rows are padded to 16 bytes (bf16RowStrideWords), so the second word of the last
// 4-column group is always inside the row (padding halves are 0).
//
// Bindings (group 0):
//   0  q       array<f32>  [T, H, Dn + Dr]        q_b_proj output, q_pe already rotated
//   1  w       array<u32>  [H·(Dn+Dv), rowStride] kv_b_proj BF16 codes, 2 per word, padded rows (ops/fp8-layout.ts)
//   2  qLat    array<f32>  [T, H, R + Dr]         written
//   3  params  uniform     Params (the FP8 kernel's, scaleCols unused)
// Workgroup: WG threads (override, default 64), thread = one 4-column group × TT tokens (parameter, ≤ 8).
// Dispatch: (⌈⌈R/4⌉ / WG⌉, H, ⌈T / TT⌉).
// CPU counterpart: model/reference.ts attentionAbsorbed (the q̃ loop) on bf16ArrayToF32(kv_b).

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
  _unused: u32,    // scaleCols of the FP8 kernel
  TT: u32,         // tokens per thread (≤ 8)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> qLat: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// four BF16 codes (two words, low half first) -> f32, exact
// #include "bf16x4.wgsl"

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

  let group = gid.x; // columns 4·group .. 4·group + 3
  if (group >= (p.R + 3u) / 4u) { return; }
  let row0 = h * (p.Dn + p.Dv);
  let tLast = p.T - 1u;

  // explicit zeroing (Dawn does not re-zero loop-local vars; kept at function scope here)
  var acc: array<vec4<f32>, MAX_TT>;
  for (var tt = 0u; tt < MAX_TT; tt++) { acc[tt] = vec4<f32>(0.0); }
  for (var d = 0u; d < p.Dn; d++) {
    let o = (row0 + d) * p.rowStride + 2u * group;
    let wv = bf16x4(w[o], w[o + 1u]);
    for (var tt = 0u; tt < TT; tt++) {
      let t = min(t0 + tt, tLast); // rows past T compute a duplicate, never written
      acc[tt] += wv * q[(t * H + h) * Dq + d];
    }
  }
  // padding halves decode to 0, but only columns < R exist in qLat's row
  let n = min(4u, p.R - group * 4u);
  for (var tt = 0u; tt < TT; tt++) {
    let t = t0 + tt;
    if (t < p.T) {
      let o = (t * H + h) * L + group * 4u;
      let a = acc[tt];
      qLat[o] = a.x;
      if (n > 1u) { qLat[o + 1u] = a.y; }
      if (n > 2u) { qLat[o + 2u] = a.z; }
      if (n > 3u) { qLat[o + 3u] = a.w; }
    }
  }
}
