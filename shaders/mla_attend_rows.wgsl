// mla_attend_rows.wgsl — the whole absorbed MLA attention of query rows in ONE dispatch, for one-token decode on
// CPU adapters (docs/model.md §4.5; docs/kernels.md "Fused decode dispatches"): mla_absorb_q, mla_attention_rows
// (no split) and mla_absorb_v of the same row ρ = (t, h) in one invocation; a kernel family: mla_attend_rows
// (FP8 kv_b) and mla_attend_rows_bf16 (BF16 kv_b), one body, the weight format spliced from
// shaders/include/format_*.wgsl:
//   q̃[c]  = Σ_d W_UK[h][d, c] · q[t, h, d]            (d < Dn; mla_absorb_q's order: 4 columns at a time, the FP8
//                                                      block scale on each 128-row partial sum)
//   ō     = softmax_j(scale · [q̃ | q_pe] · [ĉ_j | k_pe_j]) ĉ_j over keys j ≤ p0 + t  (include/mla_rows_walk.wgsl,
//                                                      the very walk of mla_attention_rows)
//   out[t, h·Dv + j] = Σ_r W_UV[h][j, r] · ō[r]        (mla_absorb_v's order: the FP8 scale on each 128-column
//                                                      partial dot)
// with W_UK[h][d, c] = kv_b[h·(Dn+Dv) + d, c], W_UV[h][j, r] = kv_b[h·(Dn+Dv) + Dn + j, r] (FP8: × the block's
// weight_scale_inv; BF16: exact). q̃ and the accumulator live in the invocation's private arrays; kv_b is read
// once per row (the unfused kernels also read it once per row, there TT tokens at a time), so this pays where a
// dispatch costs more than the lost parallelism: one token, the rows variant, no key split (plan.ts
// chooseAttendRows; a split cache takes the unfused kernels and mla_decode_reduce).
//
// Bindings (group 0):
//   0  xin     array<f32>  [T, H, Dn + Dr]        q: q_b_proj output, q_pe already rotated
//   1  cacheC  array<f32>  ĉ_j[r] at j·cStride + r
//   2  cachePe array<f32>  k_pe_j[i] at j·peStride + peOffset + i
//   3  w       array<u32>  [H·(Dn+Dv), rowStride] kv_b_proj codes, padded rows (ops/fp8-layout.ts)
//   4  scale   array<f32>  FP8 [⌈H(Dn+Dv)/128⌉, scaleCols]; BF16 any 16 bytes (not read)
//   5  out     array<f32>  [T, H·Dv]              written (the o_proj input)
//   6  params  uniform     Params (include/kvb_params.wgsl; TT unused)
// Workgroup: WG invocations (override, default 16), one row each, no barriers. Dispatch: (⌈T·H / WG⌉).
// R + Dr ≤ 640, R ≤ 512 (include/mla_rows_walk.wgsl).
// CPU counterpart: model/reference.ts attentionAbsorbed (BF16 on bf16ArrayToF32(kv_b)).
// #formats fp8 bf16

override WG: u32 = 16u;

// #include "kvb_params.wgsl"

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> cacheC: array<f32>;
@group(0) @binding(2) var<storage, read> cachePe: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<u32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

// #include "format.wgsl"
// #include "kvb_w4.wgsl"
// #include "mla_rows_walk.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  _ = &scale; // one binding layout for both formats (BF16 reads no scales)
  let row = gid.x;
  if (row >= p.T * p.H) { return; }
  let t = row / p.H;
  let h = row % p.H;
  let R = p.R;
  let Dr = p.Dr;
  let Dq = p.Dn + Dr;
  let row0 = h * (p.Dn + p.Dv);
  let groups = (R + 3u) / 4u;

  // q̃ (× softmax_scale) into q[0 .. R), q_pe after it; a last ragged group writes padding (0) past R, then
  // overwritten by q_pe (R ≤ 512: 4·groups ≤ MAX_L)
  var q: array<f32, MAX_L>;
  for (var g = 0u; g < groups; g++) {
    let cb = (g * 4u) / SCOLS; // scale column block of these 4 columns
    var a = vec4<f32>(0.0);
    var d0 = 0u;
    while (d0 < p.Dn) {
      // rows d0 .. d1 share one scale row (all Dn rows when the format has no scales)
      let d1 = select(p.Dn, min(p.Dn, ((row0 + d0) / SROWS + 1u) * SROWS - row0), HAS_SCALES);
      var part = vec4<f32>(0.0);
      for (var d = d0; d < d1; d++) { part += w4(row0 + d, g) * xin[row * Dq + d]; }
      a += part * scale_at(srow(row0 + d0, p.scaleCols) + cb);
      d0 = d1;
    }
    q[g * 4u] = a.x * p.scale;
    q[g * 4u + 1u] = a.y * p.scale;
    q[g * 4u + 2u] = a.z * p.scale;
    q[g * 4u + 3u] = a.w * p.scale;
  }
  for (var c = 0u; c < Dr; c++) { q[R + c] = xin[row * Dq + p.Dn + c] * p.scale; }

  var acc: array<f32, MAX_R>;
  let ml = walk_keys(&q, &acc, 0u, p.p0 + t + 1u, R, Dr);
  // ō = acc / l, zero up to the last whole group (R ≤ 512 = MAX_R: 4·groups ≤ MAX_R)
  for (var c = 0u; c < R; c++) { acc[c] = acc[c] / ml.y; }
  for (var c = R; c < groups * 4u; c++) { acc[c] = 0.0; }

  let bg = SCOLS / 4u; // groups per scale block (FP8: 32 = 128 columns)
  for (var j = 0u; j < p.Dv; j++) {
    let wr = row0 + p.Dn + j;
    let sr = srow(wr, p.scaleCols);
    var o = 0.0;
    for (var g0 = 0u; g0 < groups; g0 += bg) {
      let g1 = min(groups, g0 + bg);
      var part = vec4<f32>(0.0);
      for (var g = g0; g < g1; g++) {
        part += w4(wr, g) * vec4<f32>(acc[g * 4u], acc[g * 4u + 1u], acc[g * 4u + 2u], acc[g * 4u + 3u]);
      }
      o += dot(part, vec4<f32>(1.0)) * scale_at(sr + g0 / bg);
    }
    out[(t * p.H + h) * p.Dv + j] = o;
  }
}
