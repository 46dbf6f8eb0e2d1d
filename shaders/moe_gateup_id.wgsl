// moe_gateup_id.wgsl — the first half of the routed experts for decode / small T, expert ids read on the GPU
// (no CPU readback; llama.cpp mul_mat_id_vec pattern, docs/kernels.md §3.5), SwiGLU fused (docs/model.md §6.4):
//   slot k < K:  e = ids[t, k];  h[t, k, f] = w[t, k] · silu(G_e[f] · x_t) · (U_e[f] · x_t)    f < F
//   slot K:      the shared expert (weight 1), f < Fs
// A kernel family: moe_gateup_id (FP8), moe_gateup_id_bf16, moe_gateup_id_int4, one body, the weight format
// spliced from shaders/include/format_*.wgsl (code loads, scale lookup, decode). G_e / U_e = gate_proj / up_proj of
// expert e [F, D], read one u32 word at a time and decoded exactly in registers; the scale multiplies each
// scale block's partial dot (FP8: 128 columns; INT4: 32; BF16: none); the ragged last word of a row multiplies x
// masked to 0. Experts outside this dispatch's shard [e0, e1) are skipped (the launcher records one dispatch per
// shard when a stack is split across buffers, and one for a shared expert stored in another format).
//
// Bindings (group 0), the same for every format:
//   0  xin       array<f32>  [T, D]                 post_attention_layernorm output
//   1  ids       array<u32>  [T, K]                 selected experts (moe_router.wgsl)
//   2  wts       array<f32>  [T, K]                 their combine weights
//   3  codes     array<u32>  stack [2·(e1-e0), F, rsD] gate_e, up_e of the shard's experts, padded rows
//   4  scales    array<f32>  stack [2·(e1-e0), smat(F, scD)]   (any 16 bytes for BF16)
//   5  shCodes   array<u32>  stack [2, Fs, rsD]     shared expert gate, up (any 16 bytes when Fs = 0)
//   6  shScales  array<f32>  stack [2, smat(Fs, scD)]
//   7  h         array<f32>  [T, Ks, Fmax]          written
//   8  params    uniform     Params
// Workgroup: WG threads (override, default 64), one output row f each, no barriers (docs/kernels.md §3.4).
// Dispatch: (⌈Fmax / WG⌉, K or Ks slots, Tw): tokens t0 .. t0 + Tw - 1 (Tw = T, t0 = 0 unless offloading runs waves).
// CPU counterpart: model/reference.ts moe (silu(gate·x) ⊙ up·x per selected expert, × its weight).
// #formats fp8 bf16 int4

override WG: u32 = 64u;

// #include "gateup_id_io.wgsl"

// #include "format.wgsl"
// #include "rowdot.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let f = gid.x;
  let k = wid.y;
  let t = wid.z + p.t0;
  let xo = t * p.D;
  var g = 0.0;
  var u = 0.0;
  var wt = 1.0;
  if (k < p.K) {
    let e = ids[t * p.K + k];
    if (e < p.e0 || e >= p.e1 || f >= p.F) { return; }
    wt = wts[t * p.K + k];
    let mw = p.F * p.rsD;        // words per matrix
    let ms = smat(p.F, p.scD);   // scales per matrix
    let m = 2u * (e - p.e0);     // gate matrix; up is m + 1
    let sr = srow(f, p.scD);
    g = dot_routed(m * mw + f * p.rsD, m * ms + sr, xo, p.D);
    u = dot_routed((m + 1u) * mw + f * p.rsD, (m + 1u) * ms + sr, xo, p.D);
  } else {
    if (p.doShared == 0u || f >= p.Fs) { return; }
    let mw = p.Fs * p.rsD;
    let sr = srow(f, p.scD);
    g = dot_shared(f * p.rsD, sr, xo, p.D);
    u = dot_shared(mw + f * p.rsD, smat(p.Fs, p.scD) + sr, xo, p.D);
  }
  h[(t * p.Ks + k) * p.Fmax + f] = wt * (g / (1.0 + exp(-g))) * u;
}
