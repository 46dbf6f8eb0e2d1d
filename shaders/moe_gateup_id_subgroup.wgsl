// moe_gateup_id_subgroup.wgsl — moe_gateup_id.wgsl with one SUBGROUP per weight row instead of one thread:
// the lanes of a subgroup read adjacent u32 words of the same row (contiguous loads: coalesced on GPUs, plain
// vector loads on CPU adapters, where a thread-per-row kernel gathers one word per lane from different rows),
// then subgroupAdd reduces the partial dots; no workgroup memory, no barriers.
//   slot k < K:  e = ids[t, k];  h[t, k, f] = w[t, k] · silu(G_e[f] · x_t) · (U_e[f] · x_t)    f < F
//   slot K:      the shared expert (weight 1), f < Fs
// Each lane multiplies a decoded word by its block scale (word w is in 128-column block w / 32).
// Subgroup size is read from the builtin (4 on SwiftShader, 8 on lavapipe, 32/64 on GPUs): never hard-coded.
//
// Bindings (group 0): as moe_gateup_id.wgsl (0 xin, 1 ids, 2 wts, 3 codes, 4 scales, 5 shCodes,
//   6 shScales, 7 h, 8 params).
// Workgroup: WG threads (override, default 64) = WG / subgroup_size subgroups; RPW (override, default 16)
// rows per workgroup. Dispatch: (⌈Fmax / RPW⌉, K or Ks slots, Tw): tokens t0 .. t0 + Tw - 1 (Tw = T, t0 = 0 unless offloading runs waves).
// CPU counterpart: model/reference.ts moe (silu(gate·x) ⊙ up·x per selected expert, × its weight).

enable subgroups;

override WG: u32 = 64u;
override RPW: u32 = 16u;

// #include "gateup_id_io.wgsl"

var<workgroup> slotExpert: u32;

// four E4M3FN codes of a word -> f32 (docs/kernels.md §3.1 (A), exact incl. subnormals; NaN codes give ±480)
// #include "fp8x4.wgsl"

// xin[xo + c .. xo + c + 3], lanes at or past n read as 0 (never past the row)
fn x4(xo: u32, c: u32, n: u32) -> vec4<f32> {
  if (c + 4u <= n) { return vec4<f32>(xin[xo + c], xin[xo + c + 1u], xin[xo + c + 2u], xin[xo + c + 3u]); }
  let last = xo + n - 1u;
  return vec4<f32>(xin[xo + c], select(0.0, xin[min(xo + c + 1u, last)], c + 1u < n),
                   select(0.0, xin[min(xo + c + 2u, last)], c + 2u < n), 0.0);
}

// this lane's share (words lane, lane + sgSize, ...) of the gate and up dots of one row; the buffer choice
// stays outside the word loop (SwiftShader ran 2x slower with the branch inside)
fn lane_routed(gRow: u32, uRow: u32, gS: u32, uS: u32, xo: u32, lane: u32, sgSize: u32) -> vec2<f32> {
  var r = vec2<f32>(0.0);
  for (var wi = lane; wi < (p.D + 3u) / 4u; wi += sgSize) {
    let xv = x4(xo, wi * 4u, p.D);
    r += vec2<f32>(dot(fp8x4(codes[gRow + wi]), xv) * scales[gS + wi / 32u], dot(fp8x4(codes[uRow + wi]), xv) * scales[uS + wi / 32u]);
  }
  return r;
}

fn lane_shared(gRow: u32, uRow: u32, gS: u32, uS: u32, xo: u32, lane: u32, sgSize: u32) -> vec2<f32> {
  var r = vec2<f32>(0.0);
  for (var wi = lane; wi < (p.D + 3u) / 4u; wi += sgSize) {
    let xv = x4(xo, wi * 4u, p.D);
    r += vec2<f32>(dot(fp8x4(shCodes[gRow + wi]), xv) * shScales[gS + wi / 32u], dot(fp8x4(shCodes[uRow + wi]), xv) * shScales[uS + wi / 32u]);
  }
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_size) sgSize: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let k = wid.y;
  let t = wid.z + p.t0;
  // the slot's expert, made workgroup-uniform so every exit below is uniform
  if (lid == 0u) {
    var e = 0xFFFFFFFFu;
    if (k < p.K) { e = ids[t * p.K + k]; }
    slotExpert = e;
  }
  let e = workgroupUniformLoad(&slotExpert);
  let isShared = k >= p.K;
  if (isShared) {
    if (p.doShared == 0u) { return; }
  } else if (e < p.e0 || e >= p.e1) {
    return;
  }
  let Fe = select(p.F, p.Fs, isShared);
  let mw = Fe * p.rsD;
  let ms = ((Fe + 127u) / 128u) * p.scD;
  var m = 0u;
  var wt = 1.0;
  if (!isShared) {
    m = 2u * (e - p.e0);
    wt = wts[t * p.K + k];
  }
  let xo = t * p.D;
  let nsg = WG / sgSize;
  let sg = lid / sgSize;
  let fBase = wid.x * RPW;
  for (var r0 = 0u; r0 < RPW; r0 += nsg) {
    let f = fBase + r0 + sg;
    let fc = min(f, Fe - 1u); // rows past Fe compute row Fe - 1 and are not written
    let gRow = m * mw + fc * p.rsD;
    let uRow = gRow + mw;
    let gS = m * ms + (fc / 128u) * p.scD;
    let uS = gS + ms;
    var gu: vec2<f32>;
    if (isShared) { gu = lane_shared(gRow, uRow, gS, uS, xo, lane, sgSize); } else { gu = lane_routed(gRow, uRow, gS, uS, xo, lane, sgSize); }
    var g = gu.x;
    var u = gu.y;
    g = subgroupAdd(g);
    u = subgroupAdd(u);
    if (lane == 0u && f < Fe && r0 + sg < RPW) {
      h[(t * p.Ks + k) * p.Fmax + f] = wt * (g / (1.0 + exp(-g))) * u;
    }
  }
}
