// shaders/include/mla_rows_walk.wgsl: the walk of one query row over its visible keys, the body of the barrier-free
// attention kernels (mla_attention_rows, mla_attend_rows):
//   score(j) = q · [ĉ_j | k_pe_j]   (q = the row's latent query [q̃ | q_pe], already multiplied by softmax_scale)
//   online softmax: on a new max the accumulator is rescaled, then acc += e^{s − m} ĉ_j
// The including kernel declares `cacheC`, `cachePe: array<f32>` and a uniform `p` with cStride, peStride, peOffset.

// private arrays: their size drives compile time (lavapipe ~0.9 s at 1152 + 1024 floats), so they fit
// kv_lora_rank 512 + rope 64 (DeepSeek-V3, Kimi K2) and a little more; larger shapes use mla_attention.wgsl
const MAX_L: u32 = 640u;
const MAX_R: u32 = 512u;
const NEG: f32 = -3.0e38;

// keys j0 .. j1 - 1: acc[0 .. R) = Σ_j e^{s_j − m} ĉ_j (acc is zeroed here); returns (m, l = Σ_j e^{s_j − m})
fn walk_keys(q: ptr<function, array<f32, MAX_L>>, acc: ptr<function, array<f32, MAX_R>>, j0: u32, j1: u32, R: u32, Dr: u32) -> vec2<f32> {
  for (var c = 0u; c < R; c++) { (*acc)[c] = 0.0; }
  var m = NEG;
  var l = 0.0;
  for (var j = j0; j < j1; j++) {
    let co = j * p.cStride;
    let po = j * p.peStride + p.peOffset;
    var d = 0.0;
    for (var c = 0u; c < R; c++) { d += (*q)[c] * cacheC[co + c]; }
    for (var c = 0u; c < Dr; c++) { d += (*q)[R + c] * cachePe[po + c]; }
    if (d > m) {
      let al = exp(m - d);
      l *= al;
      for (var c = 0u; c < R; c++) { (*acc)[c] *= al; }
      m = d;
    }
    let pv = exp(d - m);
    l += pv;
    for (var c = 0u; c < R; c++) { (*acc)[c] += pv * cacheC[co + c]; }
  }
  return vec2<f32>(m, l);
}
