// mla_absorb_q.wgsl — absorbs k_up into the queries (docs/model.md §4.5), reading kv_b_proj's codes directly; a kernel
// family: mla_absorb_q (FP8 kv_b) and mla_absorb_q_bf16 (BF16 kv_b, checkpoints without quantization_config), one
// body, the weight format spliced from shaders/include/format_*.wgsl (docs/kernels.md §1 "Kernel families"):
//   qLat[t, h, r]     = Σ_d W_UK[h][d, r] · q[t, h, d]     r < R      (q̃ = W_UK[h]^T q_nope)
//   qLat[t, h, R + i] = q[t, h, Dn + i]                    i < Dr     (q_pe copied: one query row per head)
//   FP8:  W_UK[h][d, r] = e4m3(kv_b[h·(Dn+Dv) + d, r]) · scale[(h·(Dn+Dv) + d) / 128, r / 128]
//   BF16: W_UK[h][d, r] = bf16(kv_b[h·(Dn+Dv) + d, r])     (exact: f32 bits = bf16 << 16; no scales)
// A transposed mat-vec: each thread owns 4 adjacent latent columns (include/absorb_io.wgsl w4: one u32 word of FP8
// codes or two of BF16 per row, decoded in registers) and TT tokens (each weight group is decoded once and used for
// TT tokens); the FP8 block scale multiplies each 128-row partial sum (BF16: one partial sum over all Dn rows).
//
// Bindings (group 0), include/absorb_io.wgsl, the same for both formats:
//   0  xin     array<f32>  [T, H, Dn + Dr]        q: q_b_proj output, q_pe already rotated
//   1  w       array<u32>  [H·(Dn+Dv), rowStride] kv_b_proj codes, padded rows (ops/fp8-layout.ts)
//   2  scale   array<f32>  FP8 [⌈H(Dn+Dv)/128⌉, scaleCols]; BF16 any 16 bytes (not read)
//   3  out     array<f32>  [T, H, R + Dr]         qLat, written
//   4  params  uniform     Params (include/kvb_params.wgsl; p0 .. scale unused)
// Workgroup: WG threads (override, default 64), thread = one 4-column group × TT tokens (parameter, ≤ 8).
// Dispatch: (⌈⌈R/4⌉ / WG⌉, H, ⌈T / TT⌉).
// CPU counterpart: model/reference.ts attentionAbsorbed (the q̃ loop; BF16 on bf16ArrayToF32(kv_b)).
// #formats fp8 bf16

override WG: u32 = 64u;

// #include "format.wgsl"
// #include "absorb_io.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  _ = &scale; // one binding layout for both formats (BF16 reads no scales)
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
          out[(t * H + h) * L + p.R + i] = xin[(t * H + h) * Dq + p.Dn + i];
        }
      }
    }
  }

  let g = gid.x; // columns 4g .. 4g + 3
  if (g >= (p.R + 3u) / 4u) { return; }
  let cb = (g * 4u) / SCOLS; // scale column block of these 4 columns
  let row0 = h * (p.Dn + p.Dv);
  let tLast = p.T - 1u;

  var acc: array<vec4<f32>, MAX_TT>;
  for (var tt = 0u; tt < MAX_TT; tt++) { acc[tt] = vec4<f32>(0.0); }
  var d0 = 0u;
  while (d0 < p.Dn) {
    // rows d0 .. d1 share one scale row (all Dn rows when the format has no scales)
    let d1 = select(p.Dn, min(p.Dn, ((row0 + d0) / SROWS + 1u) * SROWS - row0), HAS_SCALES);
    // explicit zeroing: Dawn (webgpu 0.6.2, lavapipe AND SwiftShader) does not re-zero a loop-local `var`
    // declared without initializer on each iteration (it keeps the previous iteration's value; scalars too)
    var part: array<vec4<f32>, MAX_TT>;
    for (var tt = 0u; tt < MAX_TT; tt++) { part[tt] = vec4<f32>(0.0); }
    for (var d = d0; d < d1; d++) {
      let wv = w4(row0 + d, g);
      for (var tt = 0u; tt < TT; tt++) {
        let t = min(t0 + tt, tLast); // rows past T compute a duplicate, never written
        part[tt] += wv * xin[(t * H + h) * Dq + d];
      }
    }
    let s = scale_at(srow(row0 + d0, p.scaleCols) + cb);
    for (var tt = 0u; tt < TT; tt++) { acc[tt] += part[tt] * s; }
    d0 = d1;
  }
  // padding decodes to 0, but only columns < R exist in qLat's row
  let n = min(4u, p.R - g * 4u);
  for (var tt = 0u; tt < TT; tt++) {
    let t = t0 + tt;
    if (t < p.T) {
      let o = (t * H + h) * L + g * 4u;
      let a = acc[tt];
      out[o] = a.x;
      if (n > 1u) { out[o + 1u] = a.y; }
      if (n > 2u) { out[o + 2u] = a.z; }
      if (n > 3u) { out[o + 3u] = a.w; }
    }
  }
}
