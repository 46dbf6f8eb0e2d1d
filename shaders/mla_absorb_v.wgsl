// mla_absorb_v.wgsl — applies v_up to the latent attention output (docs/model.md §4.5), kv_b_proj's codes read
// directly; a kernel family: mla_absorb_v (FP8 kv_b) and mla_absorb_v_bf16 (BF16 kv_b, checkpoints without
// quantization_config), one body, the weight format spliced from shaders/include/format_*.wgsl:
//   out[t, h·Dv + j] = Σ_r W_UV[h][j, r] · oLat[t, h, r]
//   FP8:  W_UV[h][j, r] = e4m3(kv_b[h·(Dn+Dv) + Dn + j, r]) · scale[(h·(Dn+Dv) + Dn + j) / 128, r / 128]
//   BF16: W_UV[h][j, r] = bf16(kv_b[h·(Dn+Dv) + Dn + j, r])     (exact: f32 bits = bf16 << 16; no scales)
// A mat-vec per head: one thread per output row j and TT tokens (each weight group decoded once, used TT times);
// the row is read 4 columns at a time (include/absorb_io.wgsl w4), accumulated per column lane, and the FP8 block
// scale multiplies each 128-column partial dot (BF16: one partial dot over the row). The ragged last group of a
// row (R % 4 != 0) multiplies oLat masked to 0 (include/xin.wgsl x4), so oLat is never read past R.
//
// Bindings (group 0), include/absorb_io.wgsl, the same for both formats:
//   0  xin     array<f32>  [T, H, R]              oLat: normalised latent attention output
//   1  w       array<u32>  [H·(Dn+Dv), rowStride] kv_b_proj codes, padded rows (ops/fp8-layout.ts)
//   2  scale   array<f32>  FP8 [⌈H(Dn+Dv)/128⌉, scaleCols]; BF16 any 16 bytes (not read)
//   3  out     array<f32>  [T, H·Dv]              written (the o_proj input)
//   4  params  uniform     Params (include/kvb_params.wgsl; Dr, p0 .. scale unused)
// Workgroup: WG threads (override, default 64), thread = one row j × TT tokens (parameter, ≤ 8), no barriers.
// Dispatch: (⌈Dv / WG⌉, H, ⌈T / TT⌉).
// CPU counterpart: model/reference.ts attentionAbsorbed (the W_UV ō product; BF16 on bf16ArrayToF32(kv_b)).
// #formats fp8 bf16

override WG: u32 = 64u;

// #include "format.wgsl"
// #include "absorb_io.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  _ = &scale; // one binding layout for both formats (BF16 reads no scales)
  let j = gid.x;
  let h = wid.y;
  let TT = p.TT;
  let t0 = wid.z * TT;
  if (j >= p.Dv) { return; }
  let row = h * (p.Dn + p.Dv) + p.Dn + j;
  let sr = srow(row, p.scaleCols);
  let groups = (p.R + 3u) / 4u;
  let bg = SCOLS / 4u; // groups per scale block (FP8: 32 = 128 columns)
  let tLast = p.T - 1u;

  var acc: array<f32, MAX_TT>;
  for (var tt = 0u; tt < MAX_TT; tt++) { acc[tt] = 0.0; }
  for (var g0 = 0u; g0 < groups; g0 += bg) {
    let g1 = min(groups, g0 + bg);
    // explicit zeroing: Dawn (webgpu 0.6.2, lavapipe AND SwiftShader) does not re-zero a loop-local `var`
    // declared without initializer on each iteration (it keeps the previous iteration's value; scalars too)
    var part: array<vec4<f32>, MAX_TT>;
    for (var tt = 0u; tt < MAX_TT; tt++) { part[tt] = vec4<f32>(0.0); }
    for (var g = g0; g < g1; g++) {
      let wv = w4(row, g);
      for (var tt = 0u; tt < TT; tt++) {
        part[tt] += wv * x4((min(t0 + tt, tLast) * p.H + h) * p.R, g * 4u, p.R);
      }
    }
    let s = scale_at(sr + g0 / bg);
    for (var tt = 0u; tt < TT; tt++) { acc[tt] += dot(part[tt], vec4<f32>(1.0)) * s; }
  }
  for (var tt = 0u; tt < TT; tt++) {
    let t = t0 + tt;
    if (t < p.T) { out[t * p.H * p.Dv + h * p.Dv + j] = acc[tt]; }
  }
}
